// The HTML report writer (apps/report.h): escaping, base64 against RFC 4648's vectors, PNG data URIs that decode
// back to the image, histogram bins and counts on known data (in the numbers and in the SVG), line plots broken at
// missing points, CSV quoting, and a whole page that loads nothing from outside itself.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <map>
#include <regex>
#include <string>
#include <vector>

#include "apps/report.h"
#include "data/image_io.h"
#include "tests/support/test_util.h"

namespace {

namespace rp = fg::apps::report;

std::string base64_decode(const std::string& text) {
  static const std::string alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
  std::string out;
  uint32_t bits = 0;
  int n = 0;
  for (char c : text) {
    if (c == '=') break;
    const size_t v = alphabet.find(c);
    EXPECT_NE(v, std::string::npos) << "not base64: " << c;
    bits = bits << 6 | uint32_t(v);
    n += 6;
    if (n >= 8) {
      n -= 8;
      out += char((bits >> n) & 0xff);
    }
  }
  return out;
}

// Every attribute `name` of the elements matching `element_regex`, in order.
std::vector<std::map<std::string, std::string>> elements(const std::string& svg, const std::string& tag,
                                                         const std::string& cls) {
  std::vector<std::map<std::string, std::string>> out;
  const std::regex element("<" + tag + " class=\"" + cls + "\"([^>]*)>");
  const std::regex attribute("([a-z-]+)=\"([^\"]*)\"");
  for (auto it = std::sregex_iterator(svg.begin(), svg.end(), element); it != std::sregex_iterator(); ++it) {
    const std::string attrs = (*it)[1];
    std::map<std::string, std::string> m;
    for (auto a = std::sregex_iterator(attrs.begin(), attrs.end(), attribute); a != std::sregex_iterator(); ++a)
      m[(*a)[1]] = (*a)[2];
    out.push_back(m);
  }
  return out;
}

TEST(Report, EscapesHtml) {
  EXPECT_EQ(rp::escape_html("<a href=\"x\">&'</a>"), "&lt;a href=&quot;x&quot;&gt;&amp;&#39;&lt;/a&gt;");
  EXPECT_EQ(rp::escape_html("plain text 1.5"), "plain text 1.5");
  rp::HtmlReport page("<title> & co");
  page.paragraph("<script>alert(1)</script>");
  page.table({"cap<", {"a&b"}, {{"<img src=x>"}}});
  const std::string html = page.html();
  EXPECT_EQ(html.find("<script"), std::string::npos);
  EXPECT_EQ(html.find("<img src=x>"), std::string::npos);
  EXPECT_NE(html.find("&lt;script&gt;alert(1)&lt;/script&gt;"), std::string::npos);
  EXPECT_NE(html.find("<h1>&lt;title&gt; &amp; co</h1>"), std::string::npos);
}

TEST(Report, Base64OfKnownBytes) {
  // RFC 4648, section 10
  const std::vector<std::pair<std::string, std::string>> cases = {{"", ""},
                                                                  {"f", "Zg=="},
                                                                  {"fo", "Zm8="},
                                                                  {"foo", "Zm9v"},
                                                                  {"foob", "Zm9vYg=="},
                                                                  {"fooba", "Zm9vYmE="},
                                                                  {"foobar", "Zm9vYmFy"}};
  for (const auto& [in, out] : cases) EXPECT_EQ(rp::base64_encode(in), out) << in;
  EXPECT_EQ(rp::base64_encode(std::string("\xff\x00\x10", 3)), "/wAQ");
  EXPECT_EQ(rp::base64_encode(std::string("\xfb\xff", 2)), "+/8=");
  std::string all;
  for (int i = 0; i < 256; ++i) all += char(i);
  EXPECT_EQ(base64_decode(rp::base64_encode(all)), all);
}

TEST(Report, PngDataUriDecodesToTheImage) {
  // levels k/255 so the 8-bit PNG holds them exactly
  std::vector<float> v;
  for (int i = 0; i < 3 * 2 * 5; ++i) v.push_back(float((i * 37) % 256) / 255.0f);
  const fg::Tensor img = fg::Tensor::from_vector_f32(v, {3, 2, 5});
  const std::string uri = rp::png_data_uri(img);
  const std::string prefix = "data:image/png;base64,";
  ASSERT_EQ(uri.rfind(prefix, 0), 0u);
  const fg::data::Image back = fg::data::decode_image(base64_decode(uri.substr(prefix.size())), "uri");
  EXPECT_EQ(back.format, "png");
  ASSERT_EQ(back.pixels.shape(), (fg::Shape{3, 2, 5}));
  EXPECT_ALL_CLOSE(img, back.pixels, 1e-7, 0);
}

TEST(Report, HistogramBinsAndCounts) {
  const std::vector<double> values = {0.0, 0.1, 0.25, 0.5, 0.99, 1.0, -0.1, 2.0, NAN, INFINITY};
  const rp::Histogram h = rp::make_histogram(values, 4, 0.0, 1.0);
  EXPECT_EQ(h.counts, (std::vector<int64_t>{2, 1, 1, 2}));  // [0, .25) [.25, .5) [.5, .75) [.75, 1]
  EXPECT_EQ(h.below, 1);
  EXPECT_EQ(h.above, 1);
  EXPECT_EQ(h.non_finite, 2);
  EXPECT_DOUBLE_EQ(h.bin_width(), 0.25);
  EXPECT_NE(fg::test::error_of([] { rp::make_histogram({1.0}, 0, 0, 1); }), "");
  EXPECT_NE(fg::test::error_of([] { rp::make_histogram({1.0}, 3, 1, 1); }), "");

  // the SVG says the same, bar by bar, for each series
  rp::HistogramPlot plot;
  plot.title = "SSIM";
  plot.x_label = "SSIM";
  plot.bins = 4;
  plot.lo = 0;
  plot.hi = 1;
  plot.series = {{"a", values}, {"b", {0.8, 0.8, 0.8}}};
  const std::string svg = rp::svg_histogram(plot);
  const auto bars = elements(svg, "rect", "bar");
  ASSERT_EQ(bars.size(), 8u);
  const std::vector<int64_t> expected_b = {0, 0, 0, 3};
  for (size_t i = 0; i < bars.size(); ++i) {
    const size_t series = i / 4, bin = i % 4;
    EXPECT_EQ(bars[i].at("data-series"), std::to_string(series));
    EXPECT_EQ(bars[i].at("data-bin"), std::to_string(bin));
    EXPECT_DOUBLE_EQ(std::stod(bars[i].at("data-lo")), 0.25 * double(bin));
    const int64_t want = series == 0 ? h.counts[bin] : expected_b[bin];
    EXPECT_EQ(bars[i].at("data-count"), std::to_string(want)) << "series " << series << " bin " << bin;
  }
  // a taller count draws a taller bar
  EXPECT_GT(std::stod(bars[7].at("height")), std::stod(bars[0].at("height")));
  EXPECT_NE(svg.find("a (4 outside)"), std::string::npos);  // -0.1, 2, NaN and inf are said to be left out
  EXPECT_NE(svg.find("<title>a: [0.75, 1] 2</title>"), std::string::npos);
}

TEST(Report, HistogramRangeFromTheData) {
  const auto [lo, hi] = rp::finite_range({{0.5, NAN, 0.7}, {0.6, -INFINITY}});
  EXPECT_EQ(lo, 0.5);
  EXPECT_EQ(hi, 0.7);
  const auto [a, b] = rp::finite_range({{3.0, 3.0}});
  EXPECT_LT(a, 3.0);
  EXPECT_GT(b, 3.0);
  rp::HistogramPlot plot;
  plot.bins = 5;
  plot.series = {{"x", {1, 2, 3, 4, 5}}};
  const auto bars = elements(rp::svg_histogram(plot), "rect", "bar");
  ASSERT_EQ(bars.size(), 5u);
  for (const auto& bar : bars) EXPECT_EQ(bar.at("data-count"), "1");
}

TEST(Report, LinePlotBreaksAtMissingPoints) {
  rp::LinePlot plot;
  plot.title = "loss";
  plot.series = {{"train", {1, 2, 3, 4, 5}, {1.0, 0.8, NAN, 0.5, 0.4}}, {"valid", {1, 3, 5}, {0.9, 0.7, 0.6}}};
  const std::string svg = rp::svg_line_plot(plot);
  const auto lines = elements(svg, "polyline", "line");
  ASSERT_EQ(lines.size(), 3u);
  for (const auto& l : lines) {
    const std::string& pts = l.at("points");
    EXPECT_EQ(std::count(pts.begin(), pts.end(), ','), pts == lines[2].at("points") ? 3 : 2);
  }
}

TEST(Report, CsvQuoting) {
  EXPECT_EQ(rp::csv_field("plain"), "plain");
  EXPECT_EQ(rp::csv_field("a,b"), "\"a,b\"");
  EXPECT_EQ(rp::csv_field("say \"hi\""), "\"say \"\"hi\"\"\"");
  EXPECT_EQ(rp::csv_field("two\nlines"), "\"two\nlines\"");
  EXPECT_EQ(rp::csv_row({"a", "b,c", ""}), "a,\"b,c\",\n");
  EXPECT_EQ(rp::fixed(0.84, 3), "0.840");
  EXPECT_EQ(rp::fixed(INFINITY, 3), "inf");
  EXPECT_EQ(rp::fixed(NAN, 3), "nan");
}

TEST(Report, PageIsSelfContained) {
  rp::HtmlReport page("eval");
  page.heading("Summary");
  page.note("the paper's figures");
  page.table({"t", {"model", "SSIM"}, {{"m", "0.9"}}});
  rp::HistogramPlot h;
  h.series = {{"x", {0.1, 0.2}}};
  rp::LinePlot l;
  l.series = {{"y", {0, 1}, {1, 2}}};
  page.figures({rp::svg_histogram(h), rp::svg_line_plot(l)});
  page.image_row({{"input", rp::png_data_uri(fg::Tensor::zeros({3, 4, 4}))},
                  {"diff", rp::png_data_uri(fg::Tensor::ones({1, 4, 4}))}},
                 64, "a.png");
  const std::string html = page.html();
  EXPECT_EQ(html.rfind("<!DOCTYPE html>", 0), 0u);
  EXPECT_NE(html.find("</html>"), std::string::npos);
  // base64 may hold "//"; what is outside the data URIs may not
  const std::string outside = std::regex_replace(html, std::regex("data:image/png;base64,[A-Za-z0-9+/=]*"), "data:");
  for (const char* bad : {"http:", "https:", "ftp:", "file:", "//", "<script", "<link", "@import", "url("})
    EXPECT_EQ(outside.find(bad), std::string::npos) << bad;
  const std::regex src("(src|href)=\"([^\"]*)\"");
  int images = 0;
  for (auto it = std::sregex_iterator(html.begin(), html.end(), src); it != std::sregex_iterator(); ++it) {
    EXPECT_EQ((*it)[1].str(), "src");
    EXPECT_EQ((*it)[2].str().rfind("data:image/png;base64,", 0), 0u);
    ++images;
  }
  EXPECT_EQ(images, 2);
  EXPECT_NE(html.find("<svg"), std::string::npos);
}

}  // namespace
