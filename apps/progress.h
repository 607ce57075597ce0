// Training progress on stderr. When stderr is a terminal: one bar redrawn in place (at most 10 times a second)
// with the position, the loss, the rate in images/s and the time left; other output is printed above it. When it
// is not (a log file, a pipe, CI): a plain line every `line_interval_s` seconds, so logs stay readable. Off: nothing.
#pragma once
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <string>

namespace fg::apps {

class Progress {
 public:
  enum class Mode { BAR, LINES, OFF };
  // BAR when enabled and stderr is a terminal, LINES when enabled otherwise, OFF when not enabled.
  static Mode detect(bool enabled);

  explicit Progress(Mode mode, double line_interval_s = 30.0);
  ~Progress();  // ends a bar that is still drawn
  Progress(const Progress&) = delete;
  Progress& operator=(const Progress&) = delete;

  Mode mode() const { return mode_; }

  // label: where training is ("stage 1/4 epoch 3/10"); done/total: batches of the epoch; seconds_left: an estimate
  // for the rest of the stage (negative: unknown).
  void update(const std::string& label, int64_t done, int64_t total, double loss, double images_per_s,
              double seconds_left);
  // Prints a whole line on `stream`, first clearing the bar so the two do not mix (the next update redraws it).
  void print(std::FILE* stream, const std::string& line);
  // Removes the bar (a no-op in the other modes).
  void clear();

  // "0:07", "12:34", "1:02:03"; "?" for negative or non-finite seconds.
  static std::string format_duration(double seconds);

 private:
  Mode mode_;
  double line_interval_s_;
  bool bar_shown_ = false;
  bool first_line_ = true;
  std::chrono::steady_clock::time_point last_draw_;
};

}  // namespace fg::apps
