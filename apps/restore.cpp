// Restoring image files with a trained model: the plan (which file goes where, checked before anything is
// written) and the tiled restoration itself. See apps/restore.h for the promises and docs/restore.md for the
// choices (receptive fields, margins, grey and alpha handling, memory).
#include "apps/restore.h"

#include <unistd.h>
#ifdef __GLIBC__
#include <malloc.h>
#endif

#include <algorithm>
#include <chrono>
#include <cmath>
#include <filesystem>
#include <map>
#include <set>
#include <system_error>

#include "apps/args.h"
#include "apps/json.h"
#include "autograd/variable.h"
#include "data/fill_check.h"
#include "data/inpaint.h"
#include "data/resize.h"
#include "models/inference.h"
#include "nn/checkpoint.h"
#include "tensor/storage.h"

namespace fg::apps {

namespace fs = std::filesystem;

namespace {

// The extension (with its dot) an output gets for `format`, or the input's own extension for "same".
std::string output_extension(const std::string& input, const std::string& format) {
  if (format == "same") return fs::path(input).extension().string();
  if (format == "png") return ".png";
  if (format == "tif" || format == "tiff") return ".tif";
  if (format == "jpg" || format == "jpeg") return ".jpg";
  throw UsageError("--format must be same, png, tif or jpg, got '" + format + "'");
}

bool is_hidden(const fs::path& p) {
  const std::string name = p.filename().string();
  return !name.empty() && name[0] == '.';
}

// A path that names the same file however it is spelled (symbolic links and "..", for the parts that exist).
fs::path identity(const fs::path& p) {
  std::error_code ec;
  fs::path c = fs::weakly_canonical(fs::absolute(p, ec), ec);
  return ec ? fs::absolute(p).lexically_normal() : c;
}

bool same_file(const fs::path& a, const fs::path& b) {
  if (identity(a) == identity(b)) return true;
  std::error_code ec;
  return fs::exists(a, ec) && fs::exists(b, ec) && fs::equivalent(a, b, ec);  // hard links
}

// Every image file under `root` (by extension), sorted, as paths relative to root. The folder `skip` (the output
// folder, when it lies inside an input folder) is not entered, so earlier results are not restored again.
std::vector<fs::path> images_under(const fs::path& root, const fs::path& skip) {
  std::vector<fs::path> found;
  std::error_code ec;
  fs::recursive_directory_iterator it(root, fs::directory_options::skip_permission_denied, ec), end;
  if (ec) throw UsageError("the input folder '" + root.string() + "' cannot be read: " + ec.message());
  for (; it != end; it.increment(ec)) {
    if (ec) throw UsageError("the input folder '" + root.string() + "' cannot be read: " + ec.message());
    if (it->is_directory(ec)) {
      if (is_hidden(it->path()) || identity(it->path()) == skip) it.disable_recursion_pending();
      continue;
    }
    if (is_hidden(it->path())) continue;
    if (!it->is_regular_file(ec)) continue;
    if (data::image_format_for_path(it->path().string()).empty()) continue;
    // Lexically, not fs::relative: that resolves a symlinked file to its target, whose path relative to root
    // climbs out of it ("../elsewhere/x.png"), and the output would be written outside the output folder.
    found.push_back(it->path().lexically_relative(root));
  }
  std::sort(found.begin(), found.end());
  return found;
}

std::string mask_path_for(const std::string& output) {
  fs::path p(output);
  return (p.parent_path() / (p.stem().string() + "_mask.png")).string();
}

// Receptive field of a chain of layers along one axis: size (pixels of the input one output pixel sees) and jump
// (input pixels per pixel of the current feature map). A 3x3 conv with dilation d adds 2 d jump; a 2x2 pool adds
// jump and doubles it; an x2 upsampling (nearest or pixel shuffle) can add one coarse pixel of misalignment, then
// halves the jump. Skip connections see less than the deepest path, so the chain through the bottleneck bounds
// the whole network.
struct Field {
  int64_t size = 1, jump = 1;
  void conv(int64_t k, int64_t dilation = 1) { size += (k - 1) * dilation * jump; }
  void pool() { size += jump; jump *= 2; }
  void up() { size += jump; jump /= 2; }
  int64_t radius() const { return size / 2; }
};

// models/tiny_unet.h: conv, conv, pool, conv, conv, pool, mid (dilation 2), up, dec2, up, dec1, 1x1 head.
// (The exact radius, worked out position by position, is 20; this bound gives 22.)
int64_t tiny_unet_radius() {
  Field f;
  f.conv(3), f.conv(3), f.pool();
  f.conv(3), f.conv(3), f.pool();
  f.conv(3, 2);
  f.up(), f.conv(3);
  f.up(), f.conv(3);
  return f.radius();
}

// One SubUNet of models/cross_channel.h: four blocks of three 3x3 convs and a pool, two blocks of three dilated
// convs, four blocks of an upsampling and three convs.
int64_t sub_unet_radius() {
  Field f;
  for (int b = 0; b < 4; ++b) f.conv(3), f.conv(3), f.conv(3), f.pool();
  for (int b = 0; b < 6; ++b) f.conv(3, 2);
  for (int b = 0; b < 4; ++b) f.up(), f.conv(3), f.conv(3), f.conv(3);
  return f.radius();
}

// Empties the host block cache and hands the C heap's free pages back to the system. Loading a model frees two
// copies of its weights (the file's bytes and the parsed tensors) and the inference rewrite frees the f32 weights it
// replaces; most of those blocks are below glibc's mmap threshold, so without a trim they stay resident (measured:
// about 500 MiB for the full-width Dynamic U-Net's 166 MB of weights, bench/bench_embed_memory.cpp).
void return_freed_memory() {
  release_host_cache();
#ifdef __GLIBC__
  malloc_trim(0);
#endif
}

// The largest margin that is taken as "covers the receptive field": beyond this, tiles would be mostly margin.
constexpr int64_t kMaxExactMargin = 64;
constexpr int64_t kFeatheredMargin = 32;

}  // namespace

int64_t receptive_radius(const ModelConfig& config) {
  if (config.model == "tiny_unet") return tiny_unet_radius();
  if (config.model == "cross_channel_plain") return sub_unet_radius();
  // The final net reads the outputs of the mask and cross-channel nets: two sub-networks in sequence.
  if (config.model == "cross_channel" || config.model == "cross_channel_no_mask") return 2 * sub_unet_radius();
  return -1;  // dynamic_unet: self-attention over the whole tile
}

int64_t default_margin(const ModelConfig& config) {
  const int64_t r = receptive_radius(config);
  return r >= 0 && r <= kMaxExactMargin ? r : kFeatheredMargin;
}

int64_t trained_work_size(const std::string& checkpoint_path) {
  const nn::CheckpointInfo info = nn::read_checkpoint_info(checkpoint_path);
  std::string text;
  if (const auto it = info.extra.find("damage_frame_max"); it != info.extra.end()) {
    text = it->second;  // model.safetensors, best.safetensors and checkpoints
  } else if (const auto opts = info.extra.find("train_options"); opts != info.extra.end()) {
    const Json* frame = parse_json(opts->second).find("damage_frame_max");  // checkpoints written before the field
    if (frame != nullptr && frame->kind == Json::NUMBER) text = frame->text;
  }
  if (text.empty() || text.find_first_not_of("0123456789") != std::string::npos || text.size() > 9) return 0;
  return std::stoll(text);
}

std::string resolve_model_path(const std::string& run_or_checkpoint) {
  std::error_code ec;
  const fs::file_status st = fs::status(run_or_checkpoint, ec);
  if (!fs::exists(st)) throw UsageError("the model '" + run_or_checkpoint + "' does not exist");
  if (fs::is_directory(st)) {
    const fs::path p = fs::path(run_or_checkpoint) / "model.safetensors";
    if (!fs::exists(p, ec))
      throw UsageError("the folder '" + run_or_checkpoint +
                       "' holds no model.safetensors: pass a run folder written by 'filmgrad train' or a checkpoint");
    require_readable_file(p.string(), "the model");
    return p.string();
  }
  require_readable_file(run_or_checkpoint, "the model");
  return run_or_checkpoint;
}

std::vector<RestoreJob> plan_restore(const std::vector<std::string>& inputs, const std::string& out,
                                     const RestoreOptions& options) {
  if (inputs.empty()) throw UsageError("restore needs at least one input image or folder");
  if (out.empty()) throw UsageError("-o needs a non-empty value");
  output_extension("x", options.format);  // checks --format

  // An input file and where its output goes inside OUT, without the suffix and the extension.
  struct Found {
    fs::path input;
    fs::path relative_stem;
  };
  std::vector<Found> found;
  int64_t files_given = 0;
  for (const std::string& in : inputs) {
    std::error_code ec;
    const fs::file_status st = fs::status(in, ec);
    if (!fs::exists(st)) throw UsageError("the input '" + in + "' does not exist");
    if (fs::is_directory(st)) {
      const std::vector<fs::path> images = images_under(in, identity(out));
      if (images.empty())
        throw UsageError("the input folder '" + in + "' holds no image files (.png, .tif, .jpg, .bmp, .tga)");
      for (const fs::path& rel : images) found.push_back({fs::path(in) / rel, rel.parent_path() / rel.stem()});
    } else {
      require_readable_file(in, "the input");
      if (data::image_format_for_path(in).empty() && options.format == "same")
        throw UsageError("the input '" + in + "' has no image extension; pass --format png, tif or jpg");
      found.push_back({fs::path(in), fs::path(in).stem()});
      ++files_given;
    }
  }

  std::error_code ec;
  const bool out_is_folder = fs::is_directory(out, ec);
  const bool out_is_file =
      found.size() == 1 && files_given == 1 && !out_is_folder && !data::image_format_for_path(out).empty();
  if (out_is_file && options.format != "same" &&
      data::image_format_for_path(out) != data::image_format_for_path("x" + output_extension("x", options.format)))
    throw UsageError("-o '" + out + "' does not end in the extension --format " + options.format + " asks for");
  if (!out_is_folder && fs::exists(out, ec) && !out_is_file)
    throw UsageError("-o '" + out + "' is a file; with several inputs (or a folder) -o names the output folder");

  std::vector<RestoreJob> jobs;
  for (const Found& f : found) {
    RestoreJob job;
    job.input = f.input.string();
    if (out_is_file) {
      job.output = out;
    } else {
      const std::string ext = output_extension(job.input, options.format);
      job.output = (fs::path(out) / f.relative_stem).string() + options.suffix + ext;
    }
    if (options.write_mask) job.mask_output = mask_path_for(job.output);
    jobs.push_back(std::move(job));
  }

  // Every output is distinct, is no input, and exists only when it may be replaced.
  std::map<fs::path, std::string> claimed;  // identity of an output -> the input it belongs to
  std::vector<std::string> existing;
  for (const RestoreJob& job : jobs) {
    for (const std::string& o : {job.output, job.mask_output}) {
      if (o.empty()) continue;
      const fs::path id = identity(o);
      auto [it, fresh] = claimed.emplace(id, job.input);
      if (!fresh)
        throw UsageError("the inputs '" + it->second + "' and '" + job.input + "' would both be written to '" + o +
                         "'; give them different names, or use --format same");
      for (const Found& f : found)
        if (same_file(o, f.input))
          throw UsageError("refusing to overwrite the input '" + f.input.string() +
                           "' with a restored image; choose another -o folder or --suffix");
      if (fs::exists(o, ec)) {
        if (fs::is_directory(o, ec)) throw UsageError("the output '" + o + "' is a folder");
        existing.push_back(o);
      }
    }
  }
  if (!existing.empty() && !options.overwrite) {
    std::string more = existing.size() > 1 ? " (and " + std::to_string(existing.size() - 1) + " more)" : "";
    throw UsageError("the output '" + existing[0] + "' exists" + more + "; pass --overwrite to replace it");
  }
  return jobs;
}

Restorer::Restorer(std::unique_ptr<RestorationModel> model, const RestoreOptions& options)
    : model_(std::move(model)), options_(options) {
  FG_ASSERT(model_ != nullptr, "Restorer needs a model");
  const std::string task = data::task_name(model_->task());
  mode_ = options.mode.empty() ? task : options.mode;
  if (mode_ != "dust" && mode_ != "negative") throw UsageError("--mode must be dust or negative, got '" + mode_ + "'");
  if (mode_ != task)
    throw UsageError("the model is a " + task + " model (" + model_->config().model + "), not a " + mode_ +
                     " one; drop --mode or pass a " + mode_ + " model");
  device_ = parse_device(options.device);

  set_tiling(options.tile, options.margin, options.ramp);
  if (options.fill != "network" && options.fill != "classical")
    throw UsageError("--fill must be network or classical, got '" + options.fill + "'");
  if (options.fill == "classical") {
    if (mode_ != "dust") throw UsageError("--fill classical is for dust mode (negatives restore their blue channel)");
    if (!model_->predicts_mask())
      throw UsageError(
          "--fill classical needs a model that predicts a damage mask (a gated one, trained with "
          "--gated); this " +
          model_->config().model + " does not");
  }
  if (options.inpaint != "harmonic" && options.inpaint != "biharmonic")
    throw UsageError("--inpaint must be harmonic or biharmonic, got '" + options.inpaint + "'");
  if (options.fill_check != "neutral" && options.fill_check != "none")
    throw UsageError("--fill-check must be neutral or none, got '" + options.fill_check + "'");
  if (!(options.fill_threshold > 0 && options.fill_threshold < 1))
    throw UsageError("--fill-threshold must be between 0 and 1 (exclusive), got " +
                     std::to_string(options.fill_threshold));

  model_->module().eval();
  if (options.f16_weights && !device_.is_cpu())
    throw UsageError("f16 weights are for the CPU (the " + options.device +
                     " path computes with f32 weights); drop the f16 option or restore on the CPU");
  if (options.inference_mode || options.f16_weights) {
    models::InferenceOptions io;
    io.fold_batch_norm = options.inference_mode;
    io.f16_weights = options.f16_weights;
    models::prepare_for_inference(model_->module(), io);
  }
  if (!device_.is_cpu()) model_->to(device_);
  // Loading parsed the checkpoint into tensors that are gone now; the host block cache (tensor/storage.h) and the C
  // heap would keep their blocks, which no tile reuses.
  return_freed_memory();
}

Restorer::~Restorer() = default;

void Restorer::set_tiling(int64_t tile, int64_t margin, int64_t ramp) {
  tile_options_.multiple = model_->size_multiple();
  tile_options_.tile = tile / tile_options_.multiple * tile_options_.multiple;
  tile_options_.margin = margin >= 0 ? margin : default_margin(model_->config());
  tile_options_.ramp = ramp;
  if (tile_options_.tile < tile_options_.multiple)
    throw UsageError("--tile " + std::to_string(tile) + " is smaller than the model's size multiple " +
                     std::to_string(tile_options_.multiple));
  // What data/tiling.h needs: at least one size multiple of every tile is kept whole.
  const int64_t overlap = 2 * tile_options_.margin + tile_options_.ramp, m = tile_options_.multiple;
  if (tile_options_.tile - overlap < m)
    throw UsageError("--tile " + std::to_string(tile_options_.tile) + " keeps less than " + std::to_string(m) +
                     " pixels between its margins (2 x margin + ramp = " + std::to_string(overlap) +
                     "); raise --tile to at least " + std::to_string((overlap + 2 * m - 1) / m * m) +
                     " or lower --margin/--ramp");
}

namespace {

// A (C, H, W) f32 CPU tensor mirrored left-right and/or up-down (its own inverse), contiguous.
Tensor mirrored(const Tensor& t, bool left_right, bool up_down) {
  const Tensor in = t.contiguous();
  const int64_t C = in.size(0), H = in.size(1), W = in.size(2);
  Tensor out = Tensor::empty({C, H, W});
  const float* s = in.data<float>();
  float* d = out.data<float>();
  for (int64_t c = 0; c < C; ++c)
    for (int64_t y = 0; y < H; ++y) {
      const float* row = s + (c * H + (up_down ? H - 1 - y : y)) * W;
      float* o = d + (c * H + y) * W;
      if (left_right) {
        for (int64_t x = 0; x < W; ++x) o[x] = row[W - 1 - x];
      } else {
        std::copy(row, row + W, o);
      }
    }
  return out;
}

}  // namespace

// (3, H, W) f32 CPU in [0, 1] -> (out_channels [+ 1 mask channel], H, W) f32 CPU, one tile at a time.
Tensor Restorer::run_network(const Tensor& rgb, bool with_mask, int64_t* tiles) {
  const int64_t out_c = model_->out_channels();
  const Device device = device_;
  RestorationModel& model = *model_;
  // Only the tile's input, output and one layer's activations at a time are alive: no graph is recorded, and in
  // eval mode nothing is kept for a backward.
  const data::TileFunction once = [&model, device, out_c, with_mask](const Tensor& tile) -> Tensor {
    NoGradGuard no_grad;
    const Tensor x = tile.unsqueeze(0).to(device);
    if (!with_mask) return model.predict(Variable(x)).data().squeeze(0).to(Device::cpu());
    // One forward for both where the network predicts its mask.
    const RestorationModel::PredictionAndMask pm = model.predict_and_mask(x);
    const Tensor pred = pm.prediction.squeeze(0);
    const Tensor mask = pm.mask.squeeze(0);
    Tensor both = Tensor::empty({out_c + 1, tile.size(1), tile.size(2)});
    both.narrow(0, 0, out_c).copy_(pred.to(Device::cpu()));
    both.narrow(0, out_c, 1).copy_(mask.to(Device::cpu()));
    return both;
  };
  // --flip-average: the mean of the four mirrored tiles' results, each mirrored back.
  const data::TileFunction averaged = [&once](const Tensor& tile) -> Tensor {
    Tensor sum = once(tile).contiguous();
    float* s = sum.data<float>();
    for (int k = 1; k < 4; ++k) {
      const bool lr = k & 1, ud = k & 2;
      const Tensor r = mirrored(once(mirrored(tile, lr, ud)), lr, ud);
      const float* p = r.data<float>();
      for (int64_t i = 0; i < sum.numel(); ++i) s[i] += p[i];
    }
    for (int64_t i = 0; i < sum.numel(); ++i) s[i] *= 0.25f;
    return sum;
  };
  const data::TileFunction& fn = options_.flip_average ? averaged : once;
  if (tiles) *tiles = data::count_tiles(rgb.size(1), rgb.size(2), tile_options_);
  return data::run_tiled(rgb, fn, out_c + (with_mask ? 1 : 0), tile_options_, options_.on_tile);
}

Tensor Restorer::run_at_work_size(const Tensor& rgb, bool with_mask, int64_t* tiles) {
  const int64_t H = rgb.size(1), W = rgb.size(2), plane = H * W;
  const double scale = double(options_.work_size) / double(std::min(H, W));
  const int64_t h = std::max<int64_t>(1, std::llround(double(H) * scale));
  const int64_t w = std::max<int64_t>(1, std::llround(double(W) * scale));
  Tensor small_out = run_network(data::resize_area(rgb, h, w), /*with_mask=*/true, tiles);  // (3 + 1, h, w)
  Tensor up = data::resize_bilinear(small_out, H, W);
  small_out = Tensor();
  // up holds (restored, mask) at full size; the restored planes become input + m (restored - input) in place.
  float* u = up.data<float>();
  const float* x = rgb.data<float>();
  const float* m = u + 3 * plane;
  for (int64_t c = 0; c < 3; ++c) {
    float* uc = u + c * plane;
    const float* xc = x + c * plane;
    for (int64_t i = 0; i < plane; ++i) uc[i] = m[i] > 0.0f ? xc[i] + m[i] * (uc[i] - xc[i]) : xc[i];
  }
  // Without a mask asked for, the first three planes of the contiguous result are the image, as run_network's.
  return with_mask ? up : up.narrow(0, 0, 3);
}

data::Image Restorer::restore(data::Image image, Tensor* mask, int64_t* tiles) {
  const int C = image.channels;
  FG_ASSERT(C >= 1 && C <= 4 && image.pixels.size(0) == C, "an image with " << C << " channels");
  const bool alpha = image.has_alpha();
  const int64_t H = image.height(), W = image.width();
  const bool with_mask = mask != nullptr;

  if (mode_ == "negative") {
    FG_CHECK(C >= 3, "negative mode needs an RGB scan (the blue channel is restored from red and green), but the "
                     "image is grey; restore it in dust mode");
    // The pixels stay where they are: the network reads their first three channels, and the restored blue is
    // written over channel 2, so R, G and alpha come back bit for bit.
    const Tensor rgb = C == 3 ? image.pixels : image.pixels.narrow(0, 0, 3).contiguous();
    Tensor out = run_network(rgb, with_mask, tiles);
    return_freed_memory();  // the tiles' blocks: what follows (encoding the file) needs other sizes
    image.pixels.select(0, 2).copy_(out.select(0, 0));
    if (with_mask) *mask = out.narrow(0, 1, 1).contiguous();
    return image;
  }

  // Dust mode: the network sees RGB. Grey is repeated into three channels (alpha dropped for the network and put
  // back afterwards, unchanged).
  Tensor alpha_plane;
  if (alpha) alpha_plane = image.pixels.narrow(0, C - 1, 1).clone();  // the rest of the image can then be freed
  Tensor rgb = data::to_rgb(image, data::AlphaMode::Drop);
  data::Image result;
  result.bit_depth = image.bit_depth;
  result.channels = C;
  result.format = image.format;
  result.alpha_premultiplied = image.alpha_premultiplied;
  image.pixels = Tensor();  // when the image was RGB, rgb still holds its pixels; otherwise they are freed here

  const bool shrink = options_.work_size > 0 && std::min(H, W) > options_.work_size;
  const bool classical = options_.fill == "classical";
  Tensor out =
      shrink ? run_at_work_size(rgb, with_mask || classical, tiles) : run_network(rgb, with_mask || classical, tiles);
  if (classical) {
    // The network's image is replaced by the classical fill of the hole its mask marks (by default the fill of the
    // inpaint row of `filmgrad eval`).
    const Tensor hole = data::hole_from_mask(out.narrow(0, 3, 1).contiguous(), options_.fill_threshold);
    const Tensor filled =
        options_.inpaint == "biharmonic" ? data::inpaint_biharmonic(rgb, hole) : data::inpaint_diffusion(rgb, hole);
    if (options_.fill_check == "neutral") {
      // The components whose change is not neutral come back as they were.
      const Tensor keep = data::neutral_components(rgb, filled, hole);
      const Tensor input = rgb.contiguous();
      const float* k = keep.data<float>();
      const int64_t plane = H * W;
      for (int64_t ch = 0; ch < 3; ++ch) {  // out is a contiguous (4, H, W): its RGB planes come first
        const float* f = filled.data<float>() + ch * plane;
        const float* in = input.data<float>() + ch * plane;
        float* o = out.data<float>() + ch * plane;
        for (int64_t i = 0; i < plane; ++i) o[i] = k[i] > 0.5f ? f[i] : in[i];
      }
    } else {
      out.narrow(0, 0, 3).copy_(filled);
    }
    if (!with_mask) out = out.narrow(0, 0, 3).contiguous();
  }
  rgb = Tensor();
  return_freed_memory();  // the input's block and the tiles' blocks: what follows (encoding the file) needs others
  if (with_mask) *mask = out.narrow(0, 3, 1).contiguous();

  if (C == 3) {
    // The first three channels of the contiguous (3 [+ 1], H, W) result are themselves contiguous: no copy.
    result.pixels = with_mask ? out.narrow(0, 0, 3) : out;
    return result;
  }
  result.pixels = Tensor::empty({C, H, W});
  const int64_t plane = H * W;
  const float* o = out.data<float>();
  float* p = result.pixels.data<float>();
  if (C == 4) {
    std::copy(o, o + 3 * plane, p);
  } else {
    // Written back grey: the mean of the three restored channels (which a grey input keeps close to equal).
    for (int64_t i = 0; i < plane; ++i) p[i] = (o[i] + o[plane + i] + o[2 * plane + i]) * (1.0f / 3.0f);
  }
  if (alpha) std::copy(alpha_plane.data<float>(), alpha_plane.data<float>() + plane, p + (C - 1) * plane);
  return result;
}

RestoreReport Restorer::restore_file(const RestoreJob& job) {
  const auto start = std::chrono::steady_clock::now();
  RestoreReport report;
  data::Image image = data::read_image(job.input);
  report.width = image.width();
  report.height = image.height();
  report.input_description = image.describe();

  Tensor mask;
  data::Image out = restore(std::move(image), job.mask_output.empty() ? nullptr : &mask, &report.tiles);

  const std::string format = data::image_format_for_path(job.output);
  FG_CHECK(!format.empty(), "cannot write '" << job.output << "': unknown extension; use --format png, tif or jpg");
  const bool eight_bit_only = format == "jpeg" || format == "bmp" || format == "tga";
  std::vector<std::string> notes;
  if (format == "jpeg" && out.has_alpha()) {
    // JPEG holds no alpha: the colour is written as stored (alpha dropped), as `filmgrad forward` reads it.
    out.pixels = data::to_rgb(out, data::AlphaMode::Drop);
    if (out.channels == 2) out.pixels = out.pixels.narrow(0, 0, 1).contiguous();
    out.channels = int(out.pixels.size(0));
    notes.push_back("alpha dropped for JPEG");
  }
  if (eight_bit_only && out.bit_depth == 16) notes.push_back("written 8-bit: " + format + " holds no 16-bit samples");
  data::ImageWriteOptions wo;
  wo.bit_depth = eight_bit_only ? 8 : out.bit_depth;
  wo.jpeg_quality = options_.jpeg_quality;
  data::write_image(job.output, out, wo);
  out.pixels = Tensor();
  if (!job.mask_output.empty()) data::write_image(job.mask_output, data::make_image(mask, 8));

  for (size_t i = 0; i < notes.size(); ++i) report.note += (i ? "; " : "") + notes[i];
  report.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  return report;
}

}  // namespace fg::apps
