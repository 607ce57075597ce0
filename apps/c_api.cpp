// The C API of include/filmgrad/filmgrad.h on top of the C++ restore path (apps/restore.h): every entry point
// checks its arguments, converts the caller's interleaved pixels to the (C, H, W) f32 image the Restorer takes,
// and turns every C++ exception into a status and a thread-local message, so none crosses the C boundary.
#include <omp.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <new>
#include <string>

#include "apps/args.h"
#include "apps/restore.h"
#include "apps/task.h"
#include "data/image_io.h"
#include "filmgrad/filmgrad.h"
#include "kernels/cpu/gemm.h"
#include "models/registry.h"
#include "nn/checkpoint.h"
#include "tensor/host_cache.h"
#ifdef FG_WITH_CUDA
#include "tensor/cuda/cuda_runtime.h"
#endif

#ifndef FG_VERSION_STRING
#error "FG_VERSION_STRING is set by CMake (the project's version)"
#endif

struct fg_model {
  std::unique_ptr<fg::apps::Restorer> restorer;
  std::string model_name;
  // The progress callback of the fg_restore in flight (the Restorer's on_tile forwards to it).
  fg_progress_fn progress = nullptr;
  void* user_data = nullptr;
};

namespace {

thread_local std::string g_last_error;

// A failure with its status; what every entry point's catch turns into a return value.
struct CallError {
  fg_status status;
  std::string message;
};

[[noreturn]] void fail(fg_status status, const std::string& message) {
  throw CallError{status, message};
}

// Thrown from the tile callback when the caller's progress function asks to stop.
struct Cancelled {};

// Runs `body` and maps what it throws to a status; `context` says which status fg::Error means in this call
// (a model that does not load, an image that cannot be restored).
template <typename Body>
fg_status guarded(fg_status error_status, Body&& body) {
  try {
    body();
    return FG_OK;
  } catch (const CallError& e) {
    g_last_error = e.message;
    return e.status;
  } catch (const Cancelled&) {
    g_last_error = "the restore was cancelled by the progress callback; nothing was written to the output";
    return FG_ERROR_CANCELLED;
  } catch (const fg::apps::UsageError& e) {
    g_last_error = e.what();
    return error_status == FG_ERROR_MODEL ? FG_ERROR_MODEL : FG_ERROR_ARGUMENT;
  } catch (const fg::Error& e) {
    g_last_error = e.what();
    return error_status;
  } catch (const std::bad_alloc&) {
    g_last_error = "out of memory; restore with a smaller tile (fg_restore_options.tile) or free memory";
    return FG_ERROR_MEMORY;
  } catch (const std::exception& e) {
    g_last_error = std::string("internal error (please report it): ") + e.what();
    return FG_ERROR_INTERNAL;
  } catch (...) {
    g_last_error = "internal error (please report it): an unknown exception";
    return FG_ERROR_INTERNAL;
  }
}

void require(bool condition, const std::string& message) {
  if (!condition) fail(FG_ERROR_ARGUMENT, message);
}

size_t sample_bytes(fg_sample_type type) {
  switch (type) {
    case FG_U8:
      return 1;
    case FG_U16:
      return 2;
    case FG_F32:
      return 4;
    default:
      break;
  }
  return 0;
}

// Checks an image description; `what` names it in messages ("the input image"). Returns its row stride in bytes.
int64_t check_image(const fg_image* image, const char* what, bool is_mask) {
  const std::string name = what;
  require(image->data != nullptr, name + " has no pixels (data is NULL)");
  require(image->width > 0 && image->height > 0, name + " is " + std::to_string(image->width) + " x " +
                                                     std::to_string(image->height) + " pixels; both must be positive");
  // The restorer works on the whole image as f32 planes; this bound keeps every byte offset inside int64.
  require(image->width <= 1000000 && image->height <= 1000000, name + " is " + std::to_string(image->width) + " x " +
                                                                   std::to_string(image->height) +
                                                                   " pixels; sides above 1,000,000 are refused");
  const size_t bytes = sample_bytes(image->type);
  require(bytes != 0,
          name + " has an unknown sample type " + std::to_string(int(image->type)) + "; use FG_U8, FG_U16 or FG_F32");
  if (is_mask) {
    require(image->channels == 1, name + " has " + std::to_string(image->channels) + " channels; a mask has 1");
  } else {
    require(image->channels == 3 || image->channels == 4,
            name + " has " + std::to_string(image->channels) + " channels; use 3 (RGB) or 4 (RGBA)");
  }
  const int64_t packed = image->width * image->channels * int64_t(bytes);
  const int64_t stride = image->stride == 0 ? packed : image->stride;
  require(stride >= packed, name + "'s stride " + std::to_string(image->stride) + " is smaller than a row (" +
                                std::to_string(packed) + " bytes); pass 0 for packed rows");
  require(stride % int64_t(bytes) == 0 && reinterpret_cast<uintptr_t>(image->data) % bytes == 0,
          name + "'s data or stride is not aligned to its " + std::to_string(bytes) + "-byte samples");
  return stride;
}

// Interleaved samples -> (C, H, W) f32 in [0, 1], as data/image_io.h scales file samples.
fg::Tensor to_planes(const fg_image& image, int64_t stride) {
  const int64_t H = image.height, W = image.width, C = image.channels;
  fg::Tensor planes = fg::Tensor::empty({C, H, W});
  float* p = planes.data<float>();
  const char* base = static_cast<const char*>(image.data);
  for (int64_t y = 0; y < H; ++y) {
    const char* row = base + y * stride;
    for (int64_t x = 0; x < W; ++x)
      for (int64_t c = 0; c < C; ++c) {
        const int64_t i = x * C + c;
        float v;
        if (image.type == FG_U8) {
          v = float(reinterpret_cast<const uint8_t*>(row)[i]) * (1.0f / 255.0f);
        } else if (image.type == FG_U16) {
          v = float(reinterpret_cast<const uint16_t*>(row)[i]) * (1.0f / 65535.0f);
        } else {
          v = reinterpret_cast<const float*>(row)[i];
          if (!std::isfinite(v))
            fail(FG_ERROR_ARGUMENT, "the input image's sample at x " + std::to_string(x) + ", y " + std::to_string(y) +
                                        ", channel " + std::to_string(c) +
                                        " is not finite; float samples must be finite");
        }
        p[(c * H + y) * W + x] = v;
      }
  }
  return planes;
}

// One f32 value in [0, 1] (clamped; NaN as 0) into a sample, rounded to the nearest level as image files are.
inline void store_sample(void* row, int64_t i, fg_sample_type type, float v) {
  v = v > 0.0f ? std::min(v, 1.0f) : 0.0f;
  if (type == FG_U8) {
    reinterpret_cast<uint8_t*>(row)[i] = uint8_t(std::lround(v * 255.0f));
  } else if (type == FG_U16) {
    reinterpret_cast<uint16_t*>(row)[i] = uint16_t(std::lround(v * 65535.0f));
  } else {
    reinterpret_cast<float*>(row)[i] = v;
  }
}

// (C, H, W) f32 planes -> the caller's interleaved image. Channels the planes lack (alpha) are set to 1.
void from_planes(const fg::Tensor& planes, const fg_image& image, int64_t stride) {
  const int64_t H = image.height, W = image.width, C = image.channels, PC = planes.size(0);
  const fg::Tensor src = planes.contiguous();
  const float* p = src.data<float>();
  char* base = static_cast<char*>(image.data);
  for (int64_t y = 0; y < H; ++y) {
    char* row = base + y * stride;
    for (int64_t x = 0; x < W; ++x)
      for (int64_t c = 0; c < C; ++c) store_sample(row, x * C + c, image.type, c < PC ? p[(c * H + y) * W + x] : 1.0f);
  }
}

fg_mode mode_of_task(const std::string& task) {
  return task == "negative" ? FG_MODE_NEGATIVE : FG_MODE_DUST;
}

std::unique_ptr<fg::apps::RestorationModel> load_model(const std::string& path, const fg_load_options& options) {
  using fg::apps::RestorationModel;
  const std::string name = options.model ? options.model : "";
  if (name.empty()) {
    const std::string checkpoint = fg::apps::resolve_model_path(path);
    return fg::apps::load_restoration_model(checkpoint);
  }
  fg::apps::ModelConfig config;
  config.model = name;
  config.width = options.width == 0 ? 1.0 : options.width;
  config.gated = options.gated != 0;
  if (name == "dynamic_unet" || name == "tiny_unet") {
    config.task = "dust";
  } else if (name.rfind("cross_channel", 0) == 0) {
    config.task = "negative";
    config.loss = "cross_channel";
  } else {
    fail(FG_ERROR_ARGUMENT, "'" + name +
                                "' is not a restoration network; the model is one of dynamic_unet, tiny_unet (dust), "
                                "cross_channel, cross_channel_no_mask, cross_channel_plain (negative)");
  }
  try {
    config.validate();
  } catch (const fg::Error& e) {
    fail(FG_ERROR_ARGUMENT, e.what());
  }
  fg::apps::require_readable_file(path, "the model file");
  fg::Generator gen(0);
  auto model = std::make_unique<RestorationModel>(config, gen, /*build_loss=*/false);
  try {
    fg::models::load_model_weights(model->module(), path);
  } catch (const fg::Error& e) {
    char width[32];
    std::snprintf(width, sizeof width, "%g", config.width);
    throw fg::Error("the weights in '" + path + "' do not fit " + name + " at width " + width +
                    (config.gated ? " (gated)" : "") + ": " + e.what());
  }
  return model;
}

}  // namespace

extern "C" {

const char* fg_status_name(fg_status status) {
  switch (status) {
    case FG_OK:
      return "ok";
    case FG_ERROR_ARGUMENT:
      return "invalid argument";
    case FG_ERROR_MODEL:
      return "model error";
    case FG_ERROR_UNSUPPORTED:
      return "unsupported";
    case FG_ERROR_CANCELLED:
      return "cancelled";
    case FG_ERROR_MEMORY:
      return "out of memory";
    case FG_ERROR_INTERNAL:
      return "internal error";
    default:
      break;
  }
  return "unknown status";
}

const char* fg_last_error(void) {
  return g_last_error.c_str();
}

const char* fg_version(void) {
  return FG_VERSION_STRING;
}

fg_status fg_get_library_info(fg_library_info* info) {
  return guarded(FG_ERROR_INTERNAL, [&] {
    require(info != nullptr, "fg_get_library_info: info is NULL");
    fg_library_info out{};
    out.version_major = FILMGRAD_VERSION_MAJOR;
    out.version_minor = FILMGRAD_VERSION_MINOR;
    out.version_patch = FILMGRAD_VERSION_PATCH;
    out.version = FG_VERSION_STRING;
    out.features = FG_FEATURE_OPENMP;
#ifdef FG_WITH_CUDA
    out.features |= FG_FEATURE_CUDA;
    out.cuda_devices = fg::cuda::device_count();
#endif
#ifdef FG_WITH_CUDNN
    out.features |= FG_FEATURE_CUDNN;
#endif
#ifdef FG_MINIMAL
    out.features |= FG_FEATURE_MINIMAL;
#endif
    // Built once: the text does not change while the process runs, and callers may keep the pointer.
    static const std::string description = [] {
      std::string d = std::string("filmgrad ") + FG_VERSION_STRING;
#ifdef FG_WITH_CUDA
      d += "; cuda: built in";
#else
      d += "; cuda: not built";
#endif
#ifdef FG_MINIMAL
      d += "; minimal (inference only)";
#endif
      d += "; openmp threads: " + std::to_string(omp_get_max_threads());
      d += "; cpu gemm: " + fg::cpu::gemm_kernel_name();
      return d;
    }();
    out.description = description.c_str();
    *info = out;
  });
}

fg_status fg_set_cpu_cache_limit(int64_t megabytes) {
  return guarded(FG_ERROR_INTERNAL, [&] {
    require(megabytes >= 0 && megabytes <= (int64_t(1) << 30),
            "fg_set_cpu_cache_limit: " + std::to_string(megabytes) + " MiB is not a size; pass 0 to 2^30");
    fg::set_host_cache_limit(size_t(megabytes) << 20);
  });
}

fg_status fg_load_options_init(fg_load_options* options) {
  return guarded(FG_ERROR_INTERNAL, [&] {
    require(options != nullptr, "fg_load_options_init: options is NULL");
    *options = fg_load_options{nullptr, 1.0, 0, nullptr, 0, 0};
  });
}

fg_status fg_model_load(const char* path, const fg_load_options* options, fg_model** model) {
  return guarded(FG_ERROR_MODEL, [&] {
    require(model != nullptr, "fg_model_load: the model out-pointer is NULL");
    require(path != nullptr && path[0] != '\0',
            "fg_model_load: path is NULL or empty; pass a run folder or a checkpoint");
    fg_load_options o;
    fg_load_options_init(&o);
    if (options) o = *options;
    require(std::isfinite(o.width) && o.width >= 0,
            "fg_model_load: width " + std::to_string(o.width) + " is not a positive number (0 means 1)");
    require(o.inference_mode == 0 || o.inference_mode == 1,
            "fg_load_options.inference_mode is " + std::to_string(o.inference_mode) +
                "; use 1 (fold the BatchNorms) or 0 (the network as trained)");
    require(
        o.f16_weights == 0 || o.f16_weights == 1,
        "fg_load_options.f16_weights is " + std::to_string(o.f16_weights) + "; use 1 (16-bit weights) or 0 (32-bit)");
    fg::apps::RestoreOptions ro;
    ro.device = o.device && o.device[0] ? o.device : "cpu";
    ro.inference_mode = o.inference_mode != 0;
    ro.f16_weights = o.f16_weights != 0;
    fg::Device device;
    try {
      device = fg::parse_device(ro.device);
    } catch (const fg::Error& e) {
      fail(FG_ERROR_ARGUMENT, std::string("fg_model_load: ") + e.what());
    }
    if (!device.is_cpu()) {
      if (ro.f16_weights)
        fail(FG_ERROR_UNSUPPORTED, "fg_load_options.f16_weights is for the CPU (the device '" + ro.device +
                                       "' computes with 32-bit weights); set it to 0 or load on \"cpu\"");
#ifdef FG_WITH_CUDA
      const int devices = fg::cuda::device_count();
      if (device.index >= devices)
        fail(FG_ERROR_UNSUPPORTED, "the device '" + ro.device + "' does not exist: " + std::to_string(devices) +
                                       " CUDA devices are usable here; load the model on \"cpu\"");
#else
      fail(FG_ERROR_UNSUPPORTED, "the device '" + ro.device + "' needs CUDA, which this filmgrad is built without");
#endif
    }
    auto handle = std::make_unique<fg_model>();
    fg_model* raw = handle.get();
    ro.on_tile = [raw](int64_t done, int64_t total) {
      if (raw->progress && raw->progress(done, total, raw->user_data) != 0) throw Cancelled{};
    };
    std::unique_ptr<fg::apps::RestorationModel> m = load_model(path, o);
    handle->model_name = m->config().model;
    handle->restorer = std::make_unique<fg::apps::Restorer>(std::move(m), ro);
    *model = handle.release();
  });
}

void fg_model_free(fg_model* model) {
  delete model;
}

fg_status fg_model_get_info(const fg_model* model, fg_model_info* info) {
  return guarded(FG_ERROR_INTERNAL, [&] {
    require(model != nullptr, "fg_model_get_info: model is NULL");
    require(info != nullptr, "fg_model_get_info: info is NULL");
    fg::apps::RestorationModel& m = model->restorer->model();
    fg_model_info out{};
    out.mode = mode_of_task(m.config().task);
    out.model = model->model_name.c_str();
    out.width = m.config().width;
    out.gated = m.config().gated ? 1 : 0;
    out.predicts_mask = m.predicts_mask() ? 1 : 0;
    out.size_multiple = m.size_multiple();
    out.default_margin = fg::apps::default_margin(m.config());
    out.parameters = m.module().num_parameters();
    *info = out;
  });
}

fg_status fg_image_read(const char* path, fg_sample_type type, fg_image* image) {
  return guarded(FG_ERROR_ARGUMENT, [&] {
    require(image != nullptr, "fg_image_read: image is NULL");
    require(path != nullptr && path[0] != '\0', "fg_image_read: path is NULL or empty");
    require(type == 0 || sample_bytes(type) != 0,
            "fg_image_read: unknown sample type " + std::to_string(int(type)) + "; use 0, FG_U8, FG_U16 or FG_F32");
    const fg::data::Image file = fg::data::read_image(path);
    const int C = file.has_alpha() ? 4 : 3;
    fg::Tensor planes = fg::data::to_rgb(file, fg::data::AlphaMode::Drop);
    if (C == 4) {
      fg::Tensor rgba = fg::Tensor::empty({4, file.height(), file.width()});
      rgba.narrow(0, 0, 3).copy_(planes);
      rgba.narrow(0, 3, 1).copy_(file.pixels.narrow(0, file.channels - 1, 1));
      planes = rgba;
    }
    fg_image out{};
    out.width = file.width();
    out.height = file.height();
    out.channels = C;
    out.type = type != 0 ? type : file.bit_depth == 16 ? FG_U16 : FG_U8;
    const size_t bytes = size_t(out.width * out.height * C) * sample_bytes(out.type);
    out.data = std::malloc(bytes);
    if (out.data == nullptr) throw std::bad_alloc();
    from_planes(planes, out, out.width * C * int64_t(sample_bytes(out.type)));
    *image = out;
  });
}

fg_status fg_image_write(const char* path, const fg_image* image) {
  return guarded(FG_ERROR_ARGUMENT, [&] {
    require(path != nullptr && path[0] != '\0', "fg_image_write: path is NULL or empty");
    require(image != nullptr, "fg_image_write: image is NULL");
    const int64_t stride = check_image(image, "the image to write", image->channels == 1);
    fg::data::Image file = fg::data::make_image(to_planes(*image, stride), image->type == FG_U8 ? 8 : 16);
    const std::string format = fg::data::image_format_for_path(path);
    fg::data::ImageWriteOptions wo;
    if (format == "jpeg" || format == "bmp" || format == "tga") wo.bit_depth = 8;
    if (format == "jpeg" && file.channels == 4) {
      file.pixels = file.pixels.narrow(0, 0, 3).contiguous();
      file.channels = 3;
    }
    fg::data::write_image(path, file, wo);
  });
}

void fg_image_free(fg_image* image) {
  if (image == nullptr) return;
  std::free(image->data);
  *image = fg_image{};
}

fg_status fg_restore_options_init(fg_restore_options* options) {
  return guarded(FG_ERROR_INTERNAL, [&] {
    require(options != nullptr, "fg_restore_options_init: options is NULL");
    *options = fg_restore_options{FG_MODE_AUTO, 512, -1, 32, 0, nullptr, nullptr};
  });
}

fg_status fg_restore(fg_model* model, const fg_image* input, fg_image* output, fg_image* mask,
                     const fg_restore_options* options) {
  // Restores the calling thread's OpenMP thread count however the call ends.
  struct ThreadsGuard {
    int previous = omp_get_max_threads();
    ~ThreadsGuard() { omp_set_num_threads(previous); }
  } threads_guard;
  // The callback belongs to this call only.
  struct ProgressGuard {
    fg_model* model = nullptr;
    ~ProgressGuard() {
      if (model) model->progress = nullptr, model->user_data = nullptr;
    }
  } progress_guard;
  return guarded(FG_ERROR_ARGUMENT, [&] {
    require(model != nullptr, "fg_restore: model is NULL");
    require(input != nullptr, "fg_restore: input is NULL");
    require(output != nullptr, "fg_restore: output is NULL");
    fg_restore_options o;
    fg_restore_options_init(&o);
    if (options) o = *options;
    const int64_t in_stride = check_image(input, "the input image", false);
    const int64_t out_stride = check_image(output, "the output image", false);
    require(output->width == input->width && output->height == input->height,
            "the output image is " + std::to_string(output->width) + " x " + std::to_string(output->height) +
                " pixels but the input is " + std::to_string(input->width) + " x " + std::to_string(input->height) +
                "; they must be the same size");
    int64_t mask_stride = 0;
    if (mask) {
      mask_stride = check_image(mask, "the mask image", true);
      require(mask->width == input->width && mask->height == input->height,
              "the mask image is " + std::to_string(mask->width) + " x " + std::to_string(mask->height) +
                  " pixels but the input is " + std::to_string(input->width) + " x " + std::to_string(input->height) +
                  "; they must be the same size");
    }

    fg::apps::Restorer& restorer = *model->restorer;
    fg::apps::RestorationModel& m = restorer.model();
    const fg_mode task = mode_of_task(m.config().task);
    require(o.mode == FG_MODE_AUTO || o.mode == FG_MODE_DUST || o.mode == FG_MODE_NEGATIVE,
            "fg_restore: unknown mode " + std::to_string(int(o.mode)) +
                "; use FG_MODE_AUTO, FG_MODE_DUST or FG_MODE_NEGATIVE");
    if (o.mode != FG_MODE_AUTO && o.mode != task)
      fail(FG_ERROR_UNSUPPORTED, std::string("the model is a ") + m.config().task + " model (" + m.config().model +
                                     "), not a " + (o.mode == FG_MODE_DUST ? "dust" : "negative") +
                                     " one; pass FG_MODE_AUTO or load a model of that task");
    // The tiling, checked here so that the messages name the C API's fields.
    const int64_t multiple = m.size_multiple();
    require(o.tile >= multiple, "fg_restore: tile " + std::to_string(o.tile) +
                                    " is smaller than the model's size multiple " + std::to_string(multiple));
    require(o.margin >= -1 && o.ramp >= 0,
            "fg_restore: margin must be -1 (the default) or at least 0, and ramp at "
            "least 0; got margin " +
                std::to_string(o.margin) + ", ramp " + std::to_string(o.ramp));
    const int64_t margin = o.margin >= 0 ? o.margin : fg::apps::default_margin(m.config());
    const int64_t tile = o.tile / multiple * multiple;
    require(tile - (2 * margin + o.ramp) >= multiple,
            "fg_restore: tile " + std::to_string(tile) + " keeps less than " + std::to_string(multiple) +
                " pixels between its margins (2 x margin + ramp = " + std::to_string(2 * margin + o.ramp) +
                "); raise tile or lower margin and ramp");
    require(o.threads >= 0,
            "fg_restore: threads " + std::to_string(o.threads) + " is negative; 0 means OpenMP's default");
    restorer.set_tiling(o.tile, margin, o.ramp);
    if (o.threads > 0) omp_set_num_threads(o.threads);

    fg::data::Image image;
    image.pixels = to_planes(*input, in_stride);
    image.channels = input->channels;
    image.bit_depth = input->type == FG_U8 ? 8 : 16;

    model->progress = o.progress;
    model->user_data = o.user_data;
    progress_guard.model = model;
    if (o.progress &&
        o.progress(0, fg::data::count_tiles(input->height, input->width, restorer.tile_options()), o.user_data) != 0)
      throw Cancelled{};

    fg::Tensor mask_planes;
    fg::data::Image restored = restorer.restore(std::move(image), mask ? &mask_planes : nullptr);
    // Nothing is written before the whole restore succeeded.
    from_planes(restored.pixels, *output, out_stride);
    if (mask) from_planes(mask_planes, *mask, mask_stride);
  });
}

}  // extern "C"
