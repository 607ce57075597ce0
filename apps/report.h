// A small writer of self-contained HTML reports (what `filmgrad eval` writes): escaped text, tables, histograms and
// line plots as inline SVG, images as data: URIs, plus the CSV quoting the reports' companion files use.
//
// Promises: the page needs nothing but itself. It loads no script, style sheet, font or image from anywhere (no
// external URL appears in it; images are data:image/png;base64 URIs; SVG is inline), needs no JavaScript, and
// opens the same from a file, a mail attachment or an offline machine. Every piece of text given to the writer
// is HTML-escaped, so a file name such as "<b>&.png" is shown as it is and cannot break the page.
// Plots are deterministic (the same data give the same bytes), so reports compare with diff.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "tensor/tensor.h"

namespace fg::apps::report {

// & < > " ' as entities (the result is safe in element content and in quoted attribute values).
std::string escape_html(const std::string& text);

// RFC 4648 base64 with padding ("Man" -> "TWFu", "M" -> "TQ==").
std::string base64_encode(const std::string& bytes);

// A (C, H, W) image (C = 1 grey or 3 RGB, values in [0, 1], clamped) as "data:image/png;base64,...".
std::string png_data_uri(const Tensor& chw);

// "0.8400" (digits after the point), "inf", "-inf", "nan".
std::string fixed(double x, int digits);

// ---- CSV (RFC 4180) ----
// The field as written: quoted (with doubled quotes) when it holds a comma, quote, CR or LF, else as it is.
std::string csv_field(const std::string& field);
// Fields joined by commas, ending with "\n".
std::string csv_row(const std::vector<std::string>& fields);

// ---- histograms ----
struct Histogram {
  double lo = 0, hi = 1;         // the bins cover [lo, hi] in equal steps; the last bin includes hi
  std::vector<int64_t> counts;   // one per bin
  int64_t below = 0, above = 0;  // finite values outside [lo, hi]
  int64_t non_finite = 0;        // NaN and infinities (never binned)
  double bin_width() const { return (hi - lo) / double(counts.size()); }
};
// Counts `values` into `bins` equal bins over [lo, hi] (bins >= 1, lo < hi, both finite; fg::Error otherwise).
Histogram make_histogram(const std::vector<double>& values, int64_t bins, double lo, double hi);

// The smallest and largest finite value over all the lists, widened when they are equal (or when there are
// none) so the range is never empty.
std::pair<double, double> finite_range(const std::vector<std::vector<double>>& lists);

struct Series {
  std::string label;
  std::vector<double> values;
};

struct HistogramPlot {
  std::string title;
  std::string x_label;
  int64_t bins = 20;
  double lo = 0, hi = 0;       // lo >= hi: the range of the data (finite_range)
  std::vector<Series> series;  // drawn overlaid, each in its own colour, with a legend
};

// An inline <svg> (no xmlns needed inside HTML). Every bin of every series is one <rect class="bar"> carrying
// data-series, data-bin, data-lo, data-hi and data-count attributes and a <title> tooltip ("label: [lo, hi) n"),
// zero-count bins included (drawn with height 0), so the figure can be read back exactly.
std::string svg_histogram(const HistogramPlot& plot);

// ---- line plots ----
struct LineSeries {
  std::string label;
  std::vector<double> x, y;  // same length; points with a non-finite coordinate break the line
};

struct LinePlot {
  std::string title;
  std::string x_label, y_label;
  std::vector<LineSeries> series;
};

// An inline <svg> with one <polyline class="line"> per unbroken run of points, axes with ticks, and a legend.
std::string svg_line_plot(const LinePlot& plot);

// ---- tables and images ----
struct Table {
  std::string caption;                         // shown above the table (escaped); may be empty
  std::vector<std::string> header;             // column titles
  std::vector<std::vector<std::string>> rows;  // cells as text; numbers are right-aligned
};

struct ImageCell {
  std::string caption;   // under the image (escaped)
  std::string data_uri;  // png_data_uri(...)
};

// Builds one page. Everything added is escaped except raw() (for SVG made by the functions above).
class HtmlReport {
 public:
  explicit HtmlReport(std::string title);

  void heading(const std::string& text, int level = 2);  // level 2..4 (the title is the only h1)
  void paragraph(const std::string& text);
  void note(const std::string& text);  // a paragraph set apart (for cautions: "the paper's figures, not ours")
  void table(const Table& table);
  // A row of images shown side by side at display_width pixels each (small images are enlarged without
  // smoothing, so pixels stay visible); `label` (escaped) is written before the row when not empty.
  void image_row(const std::vector<ImageCell>& cells, int display_width, const std::string& label = "");
  // Figures (SVG strings) side by side, wrapping on narrow screens.
  void figures(const std::vector<std::string>& svgs);
  // Inserted as given: only for markup made by this file's functions.
  void raw(const std::string& html);

  // The whole page: <!DOCTYPE html> ... </html>.
  std::string html() const;

 private:
  std::string title_;
  std::string body_;
};

}  // namespace fg::apps::report
