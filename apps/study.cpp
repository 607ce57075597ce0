// The loss-network study (apps/study.h).
#include "apps/study.h"

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <set>

#include "apps/input_file.h"
#include "apps/json.h"
#include "apps/report.h"
#include "autograd/ops.h"
#include "data/image_io.h"
#include "data/resize.h"
#include "models/perceptual_loss.h"
#include "nn/optim.h"
#include "tensor/philox.h"
#include "tensor/safetensors.h"

namespace fg::apps {

namespace {

// Per-channel mean of t: (1, C, H, W), summed in double.
std::vector<double> channel_means(const Tensor& t) {
  const Tensor c = t.contiguous();
  const float* p = c.data<float>();
  const int64_t C = c.size(1), plane = c.size(2) * c.size(3);
  std::vector<double> means(size_t(C), 0.0);
  for (int64_t ch = 0; ch < C; ++ch) {
    double s = 0;
    for (int64_t i = 0; i < plane; ++i) s += p[ch * plane + i];
    means[size_t(ch)] = s / double(plane);
  }
  return means;
}

// (1, 3, H, W) normalised -> (3, H, W) in [0, 1].
Tensor denormalise(const Tensor& x) {
  const Tensor c = x.contiguous();
  const int64_t H = c.size(2), W = c.size(3);
  Tensor out = Tensor::empty({3, H, W});
  const float* p = c.data<float>();
  float* q = out.data<float>();
  for (int64_t ch = 0; ch < 3; ++ch)
    for (int64_t i = 0; i < H * W; ++i)
      q[ch * H * W + i] = std::clamp(p[ch * H * W + i] * kImageNetStd[ch] + kImageNetMean[ch], 0.0f, 1.0f);
  return out;
}

double filter_mean(models::VGG16& vgg, const Tensor& x, int64_t tap, int64_t filter) {
  NoGradGuard no_grad;
  const Tensor t = vgg.forward_taps(Variable(x), {tap})[0].data();
  return channel_means(t)[size_t(filter)];
}

// Images of equal size side by side, `columns` per row, 2 px white gaps.
Tensor grid(const std::vector<Tensor>& images, int64_t columns) {
  const int64_t n = int64_t(images.size()), H = images[0].size(1), W = images[0].size(2), gap = 2;
  columns = std::min(columns, n);
  const int64_t rows = (n + columns - 1) / columns;
  const int64_t GH = rows * H + (rows - 1) * gap, GW = columns * W + (columns - 1) * gap;
  Tensor out = Tensor::full({3, GH, GW}, 1.0);
  float* q = out.data<float>();
  for (int64_t k = 0; k < n; ++k) {
    const Tensor img = images[size_t(k)].contiguous();
    const float* p = img.data<float>();
    const int64_t y0 = (k / columns) * (H + gap), x0 = (k % columns) * (W + gap);
    for (int64_t c = 0; c < 3; ++c)
      for (int64_t y = 0; y < H; ++y)
        for (int64_t x = 0; x < W; ++x) q[(c * GH + y0 + y) * GW + x0 + x] = p[(c * H + y) * W + x];
  }
  return out;
}

std::string number_list(const std::vector<double>& v) {
  std::string s = "[";
  for (size_t i = 0; i < v.size(); ++i) s += (i ? ", " : "") + json_number(v[i]);
  return s + "]";
}
std::string int_list(const std::vector<int64_t>& v) {
  std::string s = "[";
  for (size_t i = 0; i < v.size(); ++i) s += (i ? ", " : "") + std::to_string(v[i]);
  return s + "]";
}

std::string pair_json(const PairActivations& p) {
  std::string s = "{\"name\": " + json_quote(p.name) + ", \"differing\": " + int_list(p.differing) + ", \"layers\": [";
  for (size_t l = 0; l < p.clean.size(); ++l) {
    s += std::string(l ? ", " : "") + "{\"top_clean\": " + int_list(p.top_clean[l]) +
         ", \"top_damaged\": " + int_list(p.top_damaged[l]) + ", \"clean\": " + number_list(p.clean[l]) +
         ", \"damaged\": " + number_list(p.damaged[l]) + "}";
  }
  return s + "]}";
}

std::string vis_file(size_t layer, int64_t tap) {
  return "vis_layer" + std::to_string(layer + 1) + "_f" + std::to_string(tap) + ".png";
}

}  // namespace

std::vector<std::vector<double>> mean_filter_activations(models::VGG16& vgg, const Tensor& x) {
  NoGradGuard no_grad;
  std::vector<std::vector<double>> out;
  for (const Variable& t : vgg.forward_taps(Variable(x), models::PerceptualLoss::tap_indices()))
    out.push_back(channel_means(t.data()));
  return out;
}

std::vector<int64_t> top_filters(const std::vector<double>& values, int64_t k) {
  std::vector<int64_t> idx(values.size());
  for (size_t i = 0; i < idx.size(); ++i) idx[i] = int64_t(i);
  std::stable_sort(idx.begin(), idx.end(), [&](int64_t a, int64_t b) { return values[size_t(a)] > values[size_t(b)]; });
  idx.resize(size_t(std::min<int64_t>(k, int64_t(idx.size()))));
  return idx;
}

int64_t count_differing(const std::vector<int64_t>& a, const std::vector<int64_t>& b) {
  const std::set<int64_t> in_b(b.begin(), b.end());
  int64_t n = 0;
  for (int64_t v : a) n += in_b.count(v) ? 0 : 1;
  return n;
}

void rank_filters(PairActivations* p, int64_t top) {
  p->top_clean.clear();
  p->top_damaged.clear();
  p->differing.clear();
  for (size_t l = 0; l < p->clean.size(); ++l) {
    p->top_clean.push_back(top_filters(p->clean[l], top));
    p->top_damaged.push_back(top_filters(p->damaged[l], top));
    p->differing.push_back(count_differing(p->top_clean.back(), p->top_damaged.back()));
  }
}

FilterVisual visualise_filter(models::VGG16& vgg, int64_t tap, int64_t filter, const VisOptions& o) {
  Generator gen(o.seed * 1000003u + uint64_t(tap) * 4099u + uint64_t(filter));
  Tensor img = Tensor::empty({1, 3, o.start_size, o.start_size});
  uniform_(img, gen, 150.0 / 255.0, 180.0 / 255.0);
  img = imagenet_normalize(img);
  FilterVisual v;
  v.filter = filter;
  v.start_activation = filter_mean(vgg, img, tap, filter);
  int64_t size = o.start_size;
  for (int64_t round = 0; round < o.rounds; ++round) {
    Variable x(img, true);
    nn::AdamOptions ao;
    ao.lr = o.lr;
    ao.weight_decay = 1e-6;
    nn::Adam opt({x}, ao);
    for (int64_t step = 0; step < o.steps; ++step) {
      opt.zero_grad();
      const Variable t = vgg.forward_taps(x, {tap})[0];
      const Variable loss = neg(mean(slice(t, 1, filter, filter + 1)));
      FG_CHECK(std::isfinite(loss.item()), "filter visualisation: the activation of filter "
                                               << filter << " at features[" << tap
                                               << "] is not finite; try a smaller --vis-lr");
      loss.backward();
      opt.step();
    }
    img = x.data();
    if (round + 1 < o.rounds) {
      size = int64_t(std::floor(double(size) * o.scale));
      // Resizing commutes with the per-channel affine normalisation, so the normalised image is resized directly.
      img = data::resize_bilinear(img.reshape({3, img.size(2), img.size(3)}), size, size).reshape({1, 3, size, size});
    }
  }
  v.final_activation = filter_mean(vgg, img, tap, filter);
  v.image = denormalise(img);
  return v;
}

StudyResult run_study(models::VGG16& vgg, const std::vector<StudyPair>& pairs, const StudyOptions& o,
                      const std::function<void(const std::string&)>& progress) {
  FG_CHECK(!pairs.empty(), "the study needs at least one clean/damaged pair");
  vgg.eval();
  vgg.freeze();
  StudyResult r;
  r.taps = models::PerceptualLoss::tap_indices();
  for (int64_t t : r.taps) r.channels.push_back(vgg.channels_at(t));
  const size_t L = r.taps.size();
  r.mean.name = "mean over " + std::to_string(pairs.size()) + " pair" + (pairs.size() == 1 ? "" : "s");
  r.mean.clean.assign(L, {});
  r.mean.damaged.assign(L, {});
  for (size_t l = 0; l < L; ++l) {
    r.mean.clean[l].assign(size_t(r.channels[l]), 0.0);
    r.mean.damaged[l].assign(size_t(r.channels[l]), 0.0);
  }
  for (const StudyPair& pair : pairs) {
    const Tensor clean = read_image_rgb(pair.clean_path), damaged = read_image_rgb(pair.damaged_path);
    FG_CHECK(clean.shape() == damaged.shape(), "the pair '" << pair.name << "' differs in size: '" << pair.clean_path
                                                            << "' is " << clean.size(3) << "x" << clean.size(2) << ", '"
                                                            << pair.damaged_path << "' is " << damaged.size(3) << "x"
                                                            << damaged.size(2));
    FG_CHECK(clean.size(2) >= 16 && clean.size(3) >= 16,
             "the pair '" << pair.name << "' is " << clean.size(3) << "x" << clean.size(2)
                          << "; the deepest VGG layer needs at least 16x16 pixels");
    PairActivations p;
    p.name = pair.name;
    p.clean = mean_filter_activations(vgg, imagenet_normalize(clean));
    p.damaged = mean_filter_activations(vgg, imagenet_normalize(damaged));
    rank_filters(&p, o.top);
    for (size_t l = 0; l < L; ++l)
      for (size_t f = 0; f < p.clean[l].size(); ++f) {
        r.mean.clean[l][f] += p.clean[l][f] / double(pairs.size());
        r.mean.damaged[l][f] += p.damaged[l][f] / double(pairs.size());
      }
    std::string line = "activations: " + pair.name + " (differing among the top " + std::to_string(o.top) + ":";
    for (int64_t d : p.differing) line += " " + std::to_string(d);
    progress(line + ")");
    r.pairs.push_back(std::move(p));
  }
  rank_filters(&r.mean, o.top);

  if (o.vis.filters > 0) {
    for (size_t l = 0; l < L; ++l) {
      const std::vector<int64_t> tc = top_filters(r.mean.clean[l], o.vis.filters);
      const std::vector<int64_t> td = top_filters(r.mean.damaged[l], o.vis.filters);
      std::vector<int64_t> chosen = tc;
      for (int64_t f : td)
        if (std::find(chosen.begin(), chosen.end(), f) == chosen.end()) chosen.push_back(f);
      std::vector<FilterVisual> row;
      for (int64_t f : chosen) {
        FilterVisual v = visualise_filter(vgg, r.taps[l], f, o.vis);
        v.in_clean_top = std::find(tc.begin(), tc.end(), f) != tc.end();
        v.in_damaged_top = std::find(td.begin(), td.end(), f) != td.end();
        progress("visualised features[" + std::to_string(r.taps[l]) + "] filter " + std::to_string(f) +
                 ": mean activation " + report::fixed(v.start_activation, 4) + " -> " +
                 report::fixed(v.final_activation, 4));
        row.push_back(std::move(v));
      }
      r.vis.push_back(std::move(row));
    }
  }
  return r;
}

void write_study(const StudyResult& r, const StudyOptions& o, const std::string& settings, const std::string& out_dir) {
  namespace fs = std::filesystem;
  const size_t L = r.taps.size();
  const std::string k = std::to_string(o.top);

  // study.json: everything, for scripts.
  std::string js = "{\n  \"settings\": " + json_quote(settings) + ",\n  \"top\": " + std::to_string(o.top) +
                   ",\n  \"taps\": " + int_list(r.taps) + ",\n  \"channels\": " + int_list(r.channels) +
                   ",\n  \"visualisation\": {\"filters\": " + std::to_string(o.vis.filters) +
                   ", \"start_size\": " + std::to_string(o.vis.start_size) +
                   ", \"rounds\": " + std::to_string(o.vis.rounds) + ", \"scale\": " + json_number(o.vis.scale) +
                   ", \"steps\": " + std::to_string(o.vis.steps) + ", \"lr\": " + json_number(o.vis.lr) + "}" +
                   ",\n  \"mean\": " + pair_json(r.mean) + ",\n  \"pairs\": [";
  for (size_t i = 0; i < r.pairs.size(); ++i) js += (i ? ",\n    " : "\n    ") + pair_json(r.pairs[i]);
  js += "\n  ],\n  \"visualised\": [";
  for (size_t l = 0; l < r.vis.size(); ++l) {
    js += std::string(l ? ", " : "") + "{\"tap\": " + std::to_string(r.taps[l]) +
          ", \"file\": " + json_quote(vis_file(l, r.taps[l])) + ", \"filters\": [";
    for (size_t i = 0; i < r.vis[l].size(); ++i) {
      const FilterVisual& v = r.vis[l][i];
      js += std::string(i ? ", " : "") + "{\"filter\": " + std::to_string(v.filter) +
            ", \"in_clean_top\": " + (v.in_clean_top ? "true" : "false") +
            ", \"in_damaged_top\": " + (v.in_damaged_top ? "true" : "false") +
            ", \"start_activation\": " + json_number(v.start_activation) +
            ", \"final_activation\": " + json_number(v.final_activation) +
            ", \"size\": " + std::to_string(v.image.size(2)) + "}";
    }
    js += "]}";
  }
  js += "]\n}\n";

  // table.csv: Table 5.2's layout, one row per layer.
  std::vector<std::string> header = {"layer", "features_index", "channels", "differing_mean"};
  for (const PairActivations& p : r.pairs) header.push_back("differing:" + p.name);
  std::string table_csv = report::csv_row(header);
  // activations.csv: one row per (pair, layer, filter).
  std::string act_csv = report::csv_row({"pair", "layer", "features_index", "filter", "clean", "damaged"});
  for (size_t l = 0; l < L; ++l) {
    std::vector<std::string> row = {std::to_string(l + 1), std::to_string(r.taps[l]), std::to_string(r.channels[l]),
                                    std::to_string(r.mean.differing[l])};
    for (const PairActivations& p : r.pairs) row.push_back(std::to_string(p.differing[l]));
    table_csv += report::csv_row(row);
  }
  for (const PairActivations& p : r.pairs)
    for (size_t l = 0; l < L; ++l)
      for (size_t f = 0; f < p.clean[l].size(); ++f)
        act_csv += report::csv_row({p.name, std::to_string(l + 1), std::to_string(r.taps[l]), std::to_string(f),
                                    json_number(p.clean[l][f]), json_number(p.damaged[l][f])});

  // report.html
  report::HtmlReport page("filmgrad loss-network study");
  page.paragraph(
      "What the perceptual loss's VGG16-BN sees of damage: the mean activation of every filter at the "
      "five layers the loss compares (features[5, 12, 22, 32, 42], the ReLUs before each max-pool), for " +
      std::to_string(r.pairs.size()) + " clean/damaged pair" + (r.pairs.size() == 1 ? "" : "s") +
      ", and the filters' preferred inputs found by activation maximisation.");
  page.paragraph("Command: " + settings);
  page.heading("Differing filters among the top " + k + " (the dissertation's Table 5.2)");
  report::Table t;
  t.caption = "How many of the " + k +
              " filters with the largest mean activation on the clean image are not among "
              "the " +
              k + " largest on the damaged image; 'mean' ranks the activations averaged over all pairs.";
  t.header = {"layer", "features index", "channels", "mean"};
  for (const PairActivations& p : r.pairs) t.header.push_back(p.name);
  for (size_t l = 0; l < L; ++l) {
    std::vector<std::string> row = {std::to_string(l + 1), std::to_string(r.taps[l]), std::to_string(r.channels[l]),
                                    std::to_string(r.mean.differing[l])};
    for (const PairActivations& p : r.pairs) row.push_back(std::to_string(p.differing[l]));
    t.rows.push_back(row);
  }
  page.table(t);
  report::Table tops;
  tops.caption = "The top " + k + " filters of each layer (activations averaged over the pairs), largest first.";
  tops.header = {"layer", "clean", "damaged"};
  for (size_t l = 0; l < L; ++l) {
    const auto join = [](const std::vector<int64_t>& v) {
      std::string s;
      for (size_t i = 0; i < v.size(); ++i) s += (i ? " " : "") + std::to_string(v[i]);
      return s;
    };
    tops.rows.push_back({std::to_string(l + 1), join(r.mean.top_clean[l]), join(r.mean.top_damaged[l])});
  }
  page.table(tops);
  page.heading("Mean activation per filter");
  std::vector<std::string> plots;
  for (size_t l = 0; l < L; ++l) {
    report::LinePlot plot;
    plot.title = "layer " + std::to_string(l + 1) + " (features[" + std::to_string(r.taps[l]) + "], " +
                 std::to_string(r.channels[l]) + " filters)";
    plot.x_label = "filter";
    plot.y_label = "mean activation";
    report::LineSeries clean{"clean", {}, r.mean.clean[l]}, damaged{"damaged", {}, r.mean.damaged[l]};
    for (size_t f = 0; f < r.mean.clean[l].size(); ++f) {
      clean.x.push_back(double(f));
      damaged.x.push_back(double(f));
    }
    plot.series = {clean, damaged};
    plots.push_back(report::svg_line_plot(plot));
  }
  page.figures(plots);

  std::vector<std::pair<std::string, Tensor>> grids;
  if (!r.vis.empty()) {
    page.heading("Filter visualisation");
    page.paragraph("Activation maximisation from " + std::to_string(o.vis.start_size) +
                   " px noise: " + std::to_string(o.vis.rounds) + " rounds of " + std::to_string(o.vis.steps) +
                   " Adam steps (lr " + report::fixed(o.vis.lr, 3) + "), resized x" + report::fixed(o.vis.scale, 2) +
                   " between rounds (no blur). Per layer: the top " + std::to_string(o.vis.filters) +
                   " filters on the clean images, then those only in the damaged images' top " +
                   std::to_string(o.vis.filters) + ".");
    for (size_t l = 0; l < r.vis.size(); ++l) {
      if (r.vis[l].empty()) continue;
      std::vector<report::ImageCell> cells;
      std::vector<Tensor> images;
      for (const FilterVisual& v : r.vis[l]) {
        const std::string where = v.in_clean_top && v.in_damaged_top ? "both" : v.in_clean_top ? "clean" : "damaged";
        cells.push_back({"filter " + std::to_string(v.filter) + " (" + where + "), " +
                             report::fixed(v.start_activation, 3) + " -> " + report::fixed(v.final_activation, 3),
                         report::png_data_uri(v.image)});
        images.push_back(v.image);
      }
      page.image_row(cells, 128, "layer " + std::to_string(l + 1) + " (features[" + std::to_string(r.taps[l]) + "])");
      grids.push_back({vis_file(l, r.taps[l]), grid(images, 9)});
    }
  }

  write_file_atomic((fs::path(out_dir) / "study.json").string(), js);
  write_file_atomic((fs::path(out_dir) / "table.csv").string(), table_csv);
  write_file_atomic((fs::path(out_dir) / "activations.csv").string(), act_csv);
  for (const auto& [name, g] : grids) data::write_image((fs::path(out_dir) / name).string(), data::make_image(g));
  write_file_atomic((fs::path(out_dir) / "report.html").string(), page.html());
}

}  // namespace fg::apps
