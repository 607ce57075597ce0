// The HTML report writer of report.h.
#include "apps/report.h"

#include <algorithm>
#include <cctype>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <tuple>

#include "data/image_io.h"
#include "tensor/error.h"

namespace fg::apps::report {

std::string escape_html(const std::string& text) {
  std::string out;
  out.reserve(text.size());
  for (char c : text) {
    switch (c) {
      case '&':
        out += "&amp;";
        break;
      case '<':
        out += "&lt;";
        break;
      case '>':
        out += "&gt;";
        break;
      case '"':
        out += "&quot;";
        break;
      case '\'':
        out += "&#39;";
        break;
      default:
        out += c;
    }
  }
  return out;
}

std::string base64_encode(const std::string& bytes) {
  static const char kAlphabet[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
  std::string out;
  out.reserve((bytes.size() + 2) / 3 * 4);
  size_t i = 0;
  for (; i + 2 < bytes.size(); i += 3) {
    const uint32_t v = uint32_t(uint8_t(bytes[i])) << 16 | uint32_t(uint8_t(bytes[i + 1])) << 8 | uint8_t(bytes[i + 2]);
    out += kAlphabet[v >> 18 & 63];
    out += kAlphabet[v >> 12 & 63];
    out += kAlphabet[v >> 6 & 63];
    out += kAlphabet[v & 63];
  }
  const size_t rest = bytes.size() - i;
  if (rest > 0) {
    uint32_t v = uint32_t(uint8_t(bytes[i])) << 16;
    if (rest == 2) v |= uint32_t(uint8_t(bytes[i + 1])) << 8;
    out += kAlphabet[v >> 18 & 63];
    out += kAlphabet[v >> 12 & 63];
    out += rest == 2 ? kAlphabet[v >> 6 & 63] : '=';
    out += '=';
  }
  return out;
}

std::string png_data_uri(const Tensor& chw) {
  const data::Image image = data::make_image(chw, 8);
  return "data:image/png;base64," + base64_encode(data::encode_image(image, "png"));
}

std::string fixed(double x, int digits) {
  if (std::isnan(x)) return "nan";
  if (std::isinf(x)) return x > 0 ? "inf" : "-inf";
  char buf[64];
  std::snprintf(buf, sizeof(buf), "%.*f", digits, x);
  return buf;
}

std::string csv_field(const std::string& field) {
  if (field.find_first_of(",\"\r\n") == std::string::npos) return field;
  std::string out = "\"";
  for (char c : field) {
    if (c == '"') out += '"';
    out += c;
  }
  return out + "\"";
}

std::string csv_row(const std::vector<std::string>& fields) {
  std::string out;
  for (size_t i = 0; i < fields.size(); ++i) {
    if (i > 0) out += ',';
    out += csv_field(fields[i]);
  }
  return out + "\n";
}

Histogram make_histogram(const std::vector<double>& values, int64_t bins, double lo, double hi) {
  FG_CHECK(bins >= 1, "a histogram needs at least one bin, got " << bins);
  FG_CHECK(std::isfinite(lo) && std::isfinite(hi) && lo < hi,
           "a histogram needs a finite range lo < hi, got [" << lo << ", " << hi << "]");
  Histogram h;
  h.lo = lo;
  h.hi = hi;
  h.counts.assign(size_t(bins), 0);
  for (double v : values) {
    if (!std::isfinite(v)) {
      ++h.non_finite;
    } else if (v < lo) {
      ++h.below;
    } else if (v > hi) {
      ++h.above;
    } else {
      int64_t b = int64_t(std::floor((v - lo) / (hi - lo) * double(bins)));
      h.counts[size_t(std::clamp<int64_t>(b, 0, bins - 1))] += 1;  // v == hi lands in the last bin
    }
  }
  return h;
}

std::pair<double, double> finite_range(const std::vector<std::vector<double>>& lists) {
  double lo = INFINITY, hi = -INFINITY;
  for (const auto& list : lists)
    for (double v : list)
      if (std::isfinite(v)) {
        lo = std::min(lo, v);
        hi = std::max(hi, v);
      }
  if (!(lo <= hi)) return {0.0, 1.0};
  if (lo == hi) {
    const double pad = std::max(std::abs(lo) * 0.01, 1e-3);
    return {lo - pad, hi + pad};
  }
  return {lo, hi};
}

namespace {

// Colours that stay apart for the colour-blind (Okabe and Ito's palette).
const char* const kPalette[] = {"#0072B2", "#D55E00", "#009E73", "#CC79A7", "#E69F00", "#56B4E9", "#000000"};
const char* colour(size_t i) {
  return kPalette[i % (sizeof(kPalette) / sizeof(kPalette[0]))];
}

std::string num(double x) {  // SVG coordinates
  char buf[32];
  std::snprintf(buf, sizeof(buf), "%.1f", x);
  return buf;
}

std::string label_number(double x) {  // tick labels and tooltips: up to 4 significant digits
  if (std::abs(x) < 1e-12) x = 0;
  char buf[32];
  std::snprintf(buf, sizeof(buf), "%.4g", x);
  return buf;
}

// About `target` round tick values (steps of 1, 2 or 5 times a power of ten) within [lo, hi].
std::vector<double> nice_ticks(double lo, double hi, int target) {
  const double raw = (hi - lo) / std::max(target, 1);
  if (!(raw > 0) || !std::isfinite(raw)) return {lo};
  const double power = std::pow(10.0, std::floor(std::log10(raw)));
  double step = power;
  for (double m : {1.0, 2.0, 5.0, 10.0})
    if (m * power >= raw) {
      step = m * power;
      break;
    }
  std::vector<double> ticks;
  for (double t = std::ceil(lo / step - 1e-9) * step; t <= hi + step * 1e-9; t += step) ticks.push_back(t);
  return ticks;
}

// The frame every plot shares: a plot area at (left, top) of size (w, h), a title, axis labels, a legend column.
struct Frame {
  static constexpr double kWidth = 540, kHeight = 270;
  static constexpr double left = 56, top = 30, w = 300, h = 190;
  double x0, x1, y0, y1;  // data ranges
  double px(double x) const { return left + (x - x0) / (x1 - x0) * w; }
  double py(double y) const { return top + h - (y - y0) / (y1 - y0) * h; }
};

std::string svg_open(const std::string& title) {
  return "<svg class=\"plot\" width=\"" + num(Frame::kWidth) + "\" height=\"" + num(Frame::kHeight) +
         "\" viewBox=\"0 0 " + num(Frame::kWidth) + " " + num(Frame::kHeight) +
         "\" role=\"img\" font-family=\"sans-serif\" font-size=\"11\">\n<title>" + escape_html(title) +
         "</title>\n<text x=\"" + num(Frame::left) + "\" y=\"16\" font-size=\"13\" font-weight=\"bold\">" +
         escape_html(title) + "</text>\n";
}

std::string axes(const Frame& f, const std::vector<double>& xticks, const std::vector<double>& yticks,
                 const std::string& x_label, const std::string& y_label) {
  std::string s;
  s += "<rect x=\"" + num(f.left) + "\" y=\"" + num(f.top) + "\" width=\"" + num(f.w) + "\" height=\"" + num(f.h) +
       "\" fill=\"none\" stroke=\"#888\"/>\n";
  for (double t : xticks) {
    const double x = f.px(t);
    s += "<line x1=\"" + num(x) + "\" y1=\"" + num(f.top + f.h) + "\" x2=\"" + num(x) + "\" y2=\"" +
         num(f.top + f.h + 4) + "\" stroke=\"#444\"/><text x=\"" + num(x) + "\" y=\"" + num(f.top + f.h + 16) +
         "\" text-anchor=\"middle\">" + label_number(t) + "</text>\n";
  }
  for (double t : yticks) {
    const double y = f.py(t);
    s += "<line x1=\"" + num(f.left - 4) + "\" y1=\"" + num(y) + "\" x2=\"" + num(f.left) + "\" y2=\"" + num(y) +
         "\" stroke=\"#444\"/><text x=\"" + num(f.left - 6) + "\" y=\"" + num(y + 4) + "\" text-anchor=\"end\">" +
         label_number(t) + "</text>\n";
  }
  s += "<text x=\"" + num(f.left + f.w / 2) + "\" y=\"" + num(f.top + f.h + 34) + "\" text-anchor=\"middle\">" +
       escape_html(x_label) + "</text>\n";
  s += "<text transform=\"translate(14," + num(f.top + f.h / 2) + ") rotate(-90)\" text-anchor=\"middle\">" +
       escape_html(y_label) + "</text>\n";
  return s;
}

std::string legend(const std::vector<std::string>& labels) {
  std::string s;
  const double x = Frame::left + Frame::w + 12;
  for (size_t i = 0; i < labels.size(); ++i) {
    const double y = Frame::top + 4 + 18 * double(i);
    s += "<rect x=\"" + num(x) + "\" y=\"" + num(y) + "\" width=\"12\" height=\"12\" fill=\"" + colour(i) +
         "\" fill-opacity=\"0.5\" stroke=\"" + colour(i) + "\"/><text x=\"" + num(x + 16) + "\" y=\"" + num(y + 10) +
         "\">" + escape_html(labels[i]) + "</text>\n";
  }
  return s;
}

}  // namespace

std::string svg_histogram(const HistogramPlot& plot) {
  std::vector<std::vector<double>> lists;
  for (const Series& s : plot.series) lists.push_back(s.values);
  double lo = plot.lo, hi = plot.hi;
  if (!(lo < hi)) std::tie(lo, hi) = finite_range(lists);
  std::vector<Histogram> hists;
  int64_t max_count = 1;
  for (const Series& s : plot.series) {
    hists.push_back(make_histogram(s.values, plot.bins, lo, hi));
    for (int64_t c : hists.back().counts) max_count = std::max(max_count, c);
  }
  std::vector<double> yticks;
  for (double t : nice_ticks(0, double(max_count), 4))
    if (t == std::floor(t)) yticks.push_back(t);
  const double y_top = double(max_count) * 1.08;  // headroom, so the tallest bar does not touch the frame
  const Frame f{lo, hi, 0, y_top};

  std::string s = svg_open(plot.title);
  std::vector<std::string> labels;
  for (size_t k = 0; k < hists.size(); ++k) {
    const Histogram& h = hists[k];
    const int64_t outside = h.below + h.above + h.non_finite;
    labels.push_back(plot.series[k].label + (outside > 0 ? " (" + std::to_string(outside) + " outside)" : ""));
    for (size_t b = 0; b < h.counts.size(); ++b) {
      const double a = lo + h.bin_width() * double(b);
      const double z = b + 1 == h.counts.size() ? hi : lo + h.bin_width() * double(b + 1);
      const double x = f.px(a), y = f.py(double(h.counts[b]));
      s += "<rect class=\"bar\" data-series=\"" + std::to_string(k) + "\" data-bin=\"" + std::to_string(b) +
           "\" data-lo=\"" + label_number(a) + "\" data-hi=\"" + label_number(z) + "\" data-count=\"" +
           std::to_string(h.counts[b]) + "\" x=\"" + num(x) + "\" y=\"" + num(y) + "\" width=\"" + num(f.px(z) - x) +
           "\" height=\"" + num(f.top + f.h - y) + "\" fill=\"" + colour(k) + "\" fill-opacity=\"0.35\" stroke=\"" +
           colour(k) + "\" stroke-width=\"0.8\"><title>" + escape_html(plot.series[k].label) + ": [" + label_number(a) +
           ", " + label_number(z) + (b + 1 == h.counts.size() ? "] " : ") ") + std::to_string(h.counts[b]) +
           "</title></rect>\n";
    }
  }
  s += axes(f, nice_ticks(lo, hi, 5), yticks, plot.x_label, "images");
  s += legend(labels);
  return s + "</svg>\n";
}

std::string svg_line_plot(const LinePlot& plot) {
  std::vector<std::vector<double>> xs, ys;
  for (const LineSeries& l : plot.series) {
    FG_ASSERT(l.x.size() == l.y.size(), "a line series has " << l.x.size() << " x and " << l.y.size() << " y");
    xs.push_back(l.x);
    ys.push_back(l.y);
  }
  auto [x0, x1] = finite_range(xs);
  auto [y0, y1] = finite_range(ys);
  const double pad = (y1 - y0) * 0.05;
  y0 -= pad;
  y1 += pad;
  const Frame f{x0, x1, y0, y1};
  std::string s = svg_open(plot.title);
  std::vector<std::string> labels;
  for (size_t k = 0; k < plot.series.size(); ++k) {
    const LineSeries& l = plot.series[k];
    labels.push_back(l.label);
    std::string points;
    int64_t n = 0;
    auto flush = [&] {
      if (n == 1) {  // a lone point is a dot, not an invisible line
        const size_t space = points.find(',');
        s += "<circle cx=\"" + points.substr(0, space) + "\" cy=\"" +
             points.substr(space + 1, points.size() - space - 2) + "\" r=\"2\" fill=\"" + colour(k) + "\"/>\n";
      } else if (n > 1) {
        s += "<polyline class=\"line\" fill=\"none\" stroke=\"" + std::string(colour(k)) +
             "\" stroke-width=\"1.5\" points=\"" + points + "\"/>\n";
      }
      points.clear();
      n = 0;
    };
    for (size_t i = 0; i < l.x.size(); ++i) {
      if (!std::isfinite(l.x[i]) || !std::isfinite(l.y[i])) {
        flush();
        continue;
      }
      points += num(f.px(l.x[i])) + "," + num(f.py(l.y[i])) + " ";
      ++n;
    }
    flush();
  }
  s += axes(f, nice_ticks(x0, x1, 5), nice_ticks(y0, y1, 4), plot.x_label, plot.y_label);
  s += legend(labels);
  return s + "</svg>\n";
}

HtmlReport::HtmlReport(std::string title) : title_(std::move(title)) {}

void HtmlReport::heading(const std::string& text, int level) {
  level = std::clamp(level, 2, 4);
  const std::string tag = "h" + std::to_string(level);
  body_ += "<" + tag + ">" + escape_html(text) + "</" + tag + ">\n";
}

void HtmlReport::paragraph(const std::string& text) {
  body_ += "<p>" + escape_html(text) + "</p>\n";
}

void HtmlReport::note(const std::string& text) {
  body_ += "<p class=\"note\">" + escape_html(text) + "</p>\n";
}

namespace {
bool looks_numeric(const std::string& cell) {
  if (cell.empty()) return false;
  const char c = cell[0];
  return std::isdigit(static_cast<unsigned char>(c)) || c == '-' || c == '+' || c == '.' || cell == "inf" ||
         cell == "nan";
}
}  // namespace

void HtmlReport::table(const Table& t) {
  body_ += "<table>\n";
  if (!t.caption.empty()) body_ += "<caption>" + escape_html(t.caption) + "</caption>\n";
  body_ += "<thead><tr>";
  for (const std::string& h : t.header) body_ += "<th>" + escape_html(h) + "</th>";
  body_ += "</tr></thead>\n<tbody>\n";
  for (const auto& row : t.rows) {
    body_ += "<tr>";
    for (const std::string& cell : row)
      body_ += (looks_numeric(cell) ? "<td class=\"num\">" : "<td>") + escape_html(cell) + "</td>";
    body_ += "</tr>\n";
  }
  body_ += "</tbody></table>\n";
}

void HtmlReport::image_row(const std::vector<ImageCell>& cells, int display_width, const std::string& label) {
  body_ += "<div class=\"examples\">";
  if (!label.empty()) body_ += "<div class=\"label\">" + escape_html(label) + "</div>";
  for (const ImageCell& c : cells) {
    FG_ASSERT(c.data_uri.rfind("data:", 0) == 0, "report images must be data: URIs");
    body_ += "<figure><img src=\"" + c.data_uri + "\" width=\"" + std::to_string(display_width) + "\" alt=\"" +
             escape_html(c.caption) + "\"><figcaption>" + escape_html(c.caption) + "</figcaption></figure>";
  }
  body_ += "</div>\n";
}

void HtmlReport::figures(const std::vector<std::string>& svgs) {
  body_ += "<div class=\"figures\">\n";
  for (const std::string& s : svgs) body_ += s;
  body_ += "</div>\n";
}

void HtmlReport::raw(const std::string& html) {
  body_ += html;
}

std::string HtmlReport::html() const {
  return "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n"
         "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n<title>" +
         escape_html(title_) +
         "</title>\n<style>\n"
         "body { font-family: sans-serif; margin: 1.5em auto; max-width: 1200px; padding: 0 1em; color: #222; }\n"
         "table { border-collapse: collapse; margin: 0.8em 0; }\n"
         "caption { text-align: left; font-weight: bold; padding: 0.3em 0; }\n"
         "th, td { border: 1px solid #bbb; padding: 0.25em 0.6em; }\n"
         "th { background: #eee; } td.num { text-align: right; font-variant-numeric: tabular-nums; }\n"
         ".note { background: #fff8e0; border-left: 4px solid #e0b000; padding: 0.4em 0.8em; }\n"
         ".figures { display: flex; flex-wrap: wrap; gap: 1em; }\n"
         ".examples { display: flex; flex-wrap: wrap; gap: 0.5em; align-items: flex-start; margin: 0.4em 0; }\n"
         ".examples .label { width: 14em; font-size: 0.9em; word-break: break-all; }\n"
         "figure { margin: 0; } figcaption { font-size: 0.85em; text-align: center; }\n"
         "img { image-rendering: pixelated; border: 1px solid #ccc; }\n"
         "</style>\n</head>\n<body>\n<h1>" +
         escape_html(title_) + "</h1>\n" + body_ + "</body>\n</html>\n";
}

}  // namespace fg::apps::report
