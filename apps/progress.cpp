// The progress display of progress.h.
#include "apps/progress.h"

#include <unistd.h>

#include <algorithm>
#include <cmath>

namespace fg::apps {

Progress::Mode Progress::detect(bool enabled) {
  if (!enabled) return Mode::OFF;
  return ::isatty(STDERR_FILENO) ? Mode::BAR : Mode::LINES;
}

Progress::Progress(Mode mode, double line_interval_s) : mode_(mode), line_interval_s_(line_interval_s) {}

Progress::~Progress() {
  clear();
}

std::string Progress::format_duration(double seconds) {
  if (!std::isfinite(seconds) || seconds < 0) return "?";
  const int64_t s = int64_t(std::llround(seconds));
  char buf[32];
  if (s >= 3600)
    std::snprintf(buf, sizeof buf, "%lld:%02lld:%02lld", static_cast<long long>(s / 3600),
                  static_cast<long long>(s / 60 % 60), static_cast<long long>(s % 60));
  else
    std::snprintf(buf, sizeof buf, "%lld:%02lld", static_cast<long long>(s / 60), static_cast<long long>(s % 60));
  return buf;
}

void Progress::update(const std::string& label, int64_t done, int64_t total, double loss, double images_per_s,
                      double seconds_left) {
  if (mode_ == Mode::OFF) return;
  const auto now = std::chrono::steady_clock::now();
  const double since = std::chrono::duration<double>(now - last_draw_).count();
  const bool last = done >= total;
  char stats[160];
  std::snprintf(stats, sizeof stats, "%lld/%lld loss %.5g %.1f img/s ETA %s", static_cast<long long>(done),
                static_cast<long long>(total), loss, images_per_s, format_duration(seconds_left).c_str());
  if (mode_ == Mode::LINES) {
    if (!first_line_ && since < line_interval_s_) return;
    first_line_ = false;
    last_draw_ = now;
    std::fprintf(stderr, "%s: %s\n", label.c_str(), stats);
    std::fflush(stderr);
    return;
  }
  if (bar_shown_ && since < 0.1 && !last) return;
  last_draw_ = now;
  constexpr int kWidth = 24;
  const int filled = total > 0 ? int(std::min<int64_t>(kWidth, done * kWidth / total)) : 0;
  std::string bar(size_t(filled), '=');
  if (filled < kWidth) bar += '>' + std::string(size_t(kWidth - filled - 1), ' ');
  // \r returns to the start of the line; ESC[K erases what a longer previous line left behind.
  std::fprintf(stderr, "\r%s [%s] %s\x1b[K", label.c_str(), bar.c_str(), stats);
  std::fflush(stderr);
  bar_shown_ = true;
}

void Progress::clear() {
  if (mode_ != Mode::BAR || !bar_shown_) return;
  std::fputs("\r\x1b[K", stderr);
  std::fflush(stderr);
  bar_shown_ = false;
}

void Progress::print(std::FILE* stream, const std::string& line) {
  clear();
  std::fprintf(stream, "%s\n", line.c_str());
  std::fflush(stream);
}

}  // namespace fg::apps
