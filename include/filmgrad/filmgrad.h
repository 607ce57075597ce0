/* filmgrad's C API: restore film scans held in memory with a trained model, from C or any language with a C
 * foreign-function interface. C99; no C++ type crosses it and no C++ exception leaves it.
 *
 * Promises:
 * - Every call that can fail returns an fg_status; FG_OK is 0. After a failure, fg_last_error() gives one line a
 *   person can read, saying what was wrong and what to do. The getters that cannot fail (fg_version,
 *   fg_status_name, fg_last_error) return their value directly.
 * - Nothing is changed on failure: *out pointers are set only on success, an output image is left as it was
 *   unless fg_restore returns FG_OK (a cancelled or failed restore writes nothing into it).
 * - Threads: one fg_model may be used by one thread at a time; separate fg_model handles may be used from
 *   separate threads at once (each restore then runs its own OpenMP team). fg_last_error() is per thread.
 * - Memory: a restore holds the image as 32-bit floats twice (the input and the blended output, 24 bytes per
 *   pixel for RGB) plus one tile's activations, whatever the image's size; see docs/embedding.md for measured
 *   figures. The model's weights are held by its handle until fg_model_free.
 *
 * Example (error handling shortened):
 *   fg_model* model;
 *   if (fg_model_load("runs/dust", NULL, &model) != FG_OK) { fprintf(stderr, "%s\n", fg_last_error()); ... }
 *   fg_image in = {pixels, width, height, 3, FG_U8, 0}, out = {restored, width, height, 3, FG_U8, 0};
 *   fg_restore(model, &in, &out, NULL, NULL);
 *   fg_model_free(model);
 */
#ifndef FILMGRAD_FILMGRAD_H
#define FILMGRAD_FILMGRAD_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#if defined(_WIN32)
#define FG_API
#else
#define FG_API __attribute__((visibility("default")))
#endif

/* The version of these headers; fg_version() gives the library's. */
#define FILMGRAD_VERSION_MAJOR 0
#define FILMGRAD_VERSION_MINOR 1
#define FILMGRAD_VERSION_PATCH 0

typedef enum fg_status {
  FG_OK = 0,
  FG_ERROR_ARGUMENT = 1,    /* a null pointer, a size, stride, type or option that is wrong */
  FG_ERROR_MODEL = 2,       /* the model file is missing, unreadable, corrupt or not a restoration model */
  FG_ERROR_UNSUPPORTED = 3, /* valid, but not possible here: negative mode on a dust model, CUDA not built in */
  FG_ERROR_CANCELLED = 4,   /* the progress callback asked to stop */
  FG_ERROR_MEMORY = 5,      /* an allocation failed */
  FG_ERROR_INTERNAL = 6,    /* anything else (a bug: please report it with fg_last_error()'s text) */
  /* Not a status. Each enum of this API has such a member, so that every int is one of its values: a wrong value a
   * caller passes is then reported as an error (in C++ a value outside an enum's range would be undefined). */
  FG_STATUS_ANY_INT_ = -0x7fffffff - 1
} fg_status;

/* "ok", "invalid argument", ...; never null. */
FG_API const char* fg_status_name(fg_status status);
/* The message of the last call on this thread that did not return FG_OK ("" when there was none). Valid until the
 * next filmgrad call on this thread. */
FG_API const char* fg_last_error(void);

/* ---- the library ---- */

/* Bits of fg_library_info.features. */
#define FG_FEATURE_CUDA 1u    /* built with CUDA: models may be loaded on "cuda" */
#define FG_FEATURE_CUDNN 2u   /* built with cuDNN */
#define FG_FEATURE_MINIMAL 4u /* an inference-only build (FG_MINIMAL) */
#define FG_FEATURE_OPENMP 8u  /* CPU kernels run on several threads */

typedef struct fg_library_info {
  int version_major, version_minor, version_patch;
  const char* version;     /* "0.1.0"; static storage */
  unsigned features;       /* FG_FEATURE_* bits */
  int cuda_devices;        /* CUDA devices usable now (0 without CUDA or without a device) */
  const char* description; /* "filmgrad 0.1.0; cuda: not built; openmp threads: 8; cpu gemm: avx2"; static storage */
} fg_library_info;

/* "0.1.0": the library's version (compare with FILMGRAD_VERSION_* to check headers against the library). */
FG_API const char* fg_version(void);
FG_API fg_status fg_get_library_info(fg_library_info* info);

/* The process-wide cache of freed CPU memory blocks (256 KiB and larger), which saves re-zeroing pages between
 * tiles. By default the blocks in use plus the cached ones stay within max(1024 MiB, the most ever in use at once);
 * a limit set here, or the environment variable FG_CPU_CACHE_MB read at the first allocation, bounds the cached
 * blocks alone instead. A restore peaks lower with less (`filmgrad restore` uses 256; docs/embedding.md); 0 turns
 * the cache off. Cached blocks beyond the new limit are freed at once. Affects every model in the process. */
FG_API fg_status fg_set_cpu_cache_limit(int64_t megabytes);

/* ---- models ---- */

typedef struct fg_model fg_model;

typedef struct fg_load_options {
  /* NULL or "": the file describes the model itself (a run folder written by `filmgrad train`, or its
   * model.safetensors checkpoint). Otherwise the file is a safetensors state dict (PyTorch's names) or a checkpoint
   * of this network: "dynamic_unet" or "tiny_unet" (dust), "cross_channel", "cross_channel_no_mask" or
   * "cross_channel_plain" (negative). */
  const char* model;
  double width; /* with model: the channel-width multiplier it was trained at (0: 1, the published network) */
  int gated;    /* with model: nonzero for the gated form (dynamic_unet, cross_channel) */
  /* NULL or "cpu", "cuda", "cuda:N": where the network runs (images stay in host memory). */
  const char* device;
  /* 1: the inference mode for deployment: every BatchNorm folded into the convolution before it (or, where a ReLU
   * comes between, pre-combined into one scale and shift) once after loading. Results equal the plain model's up to
   * float rounding. 0 (default): the network as trained. Other values are FG_ERROR_ARGUMENT. */
  int inference_mode;
  /* 1: store the weights in 16-bit floats, computing in 32-bit (half the model's memory; results change slightly:
   * docs/embedding.md gives the measured error). CPU only (FG_ERROR_UNSUPPORTED on "cuda"). 0 (default): 32-bit. */
  int f16_weights;
} fg_load_options;

/* Fills *options with the defaults (no model name, width 1, not gated, CPU, no inference mode, f32 weights). Fields
 * are only ever added at the end of this struct: call it before setting any, so a program built against these
 * headers gets the defaults for fields it does not know. */
FG_API fg_status fg_load_options_init(fg_load_options* options);

/* Loads a model from `path`: a run folder, a checkpoint, or (with options->model) a safetensors state dict.
 * options may be NULL (the defaults). On success *model is a new handle; free it with fg_model_free. */
FG_API fg_status fg_model_load(const char* path, const fg_load_options* options, fg_model** model);
/* Frees the handle and everything it holds. NULL is allowed (nothing happens). */
FG_API void fg_model_free(fg_model* model);

typedef enum fg_mode {
  FG_MODE_AUTO = 0,                  /* the model's own task */
  FG_MODE_DUST = 1,                  /* RGB in, RGB out: dust and scratches removed */
  FG_MODE_NEGATIVE = 2,              /* (R, G, damaged B) in; R and G kept bit for bit, B restored */
  FG_MODE_ANY_INT_ = -0x7fffffff - 1 /* not a mode (see FG_STATUS_ANY_INT_) */
} fg_mode;

typedef struct fg_model_info {
  fg_mode mode;           /* the task the model was trained for (FG_MODE_DUST or FG_MODE_NEGATIVE) */
  const char* model;      /* "dynamic_unet", ...; valid while the handle lives */
  double width;           /* channel-width multiplier */
  int gated;              /* nonzero for the gated form */
  int predicts_mask;      /* nonzero when the mask is the network's own prediction (else the change it made) */
  int64_t size_multiple;  /* tiles are multiples of this (32, 16 or 4 pixels) */
  int64_t default_margin; /* the margin fg_restore uses when margin is -1 */
  int64_t parameters;     /* number of weights */
} fg_model_info;

FG_API fg_status fg_model_get_info(const fg_model* model, fg_model_info* info);

/* ---- images ---- */

typedef enum fg_sample_type {
  FG_U8 = 1,                                /* 0..255 */
  FG_U16 = 2,                               /* 0..65535, native byte order */
  FG_F32 = 3,                               /* 0.0..1.0 (outputs are clamped to it; inputs must be finite) */
  FG_SAMPLE_TYPE_ANY_INT_ = -0x7fffffff - 1 /* not a type (see FG_STATUS_ANY_INT_) */
} fg_sample_type;

/* An image in memory: `height` rows of `width` pixels of `channels` interleaved samples (R, G, B [, A]). Row r
 * starts at (char*)data + r * stride; stride 0 means tightly packed (width * channels * sample size). The data
 * must be aligned for its sample type. */
typedef struct fg_image {
  void* data;
  int64_t width, height;
  int channels; /* 3 (RGB) or 4 (RGBA) for images; 1 for a mask */
  fg_sample_type type;
  int64_t stride; /* bytes from one row to the next; 0: packed */
} fg_image;

/* Image files, for programs that have no image library of their own (restoring works on memory only). */

/* Reads a PNG (8/16-bit), TIFF (8/16-bit), JPEG, BMP or TGA file into a new interleaved image: grey becomes RGB,
 * grey + alpha RGBA. type FG_U8, FG_U16 or FG_F32 picks the samples; 0 keeps the file's depth (8-bit files
 * FG_U8, 16-bit FG_U16). The pixels are allocated here: free them with fg_image_free. */
FG_API fg_status fg_image_read(const char* path, fg_sample_type type, fg_image* image);
/* Writes an image (1, 3 or 4 channels) in the format its extension names (.png, .tif, .jpg, .bmp, .tga): FG_U8 as
 * 8-bit, FG_U16 and FG_F32 as 16-bit where the format holds it. Written atomically: a failure leaves no file. */
FG_API fg_status fg_image_write(const char* path, const fg_image* image);
/* Frees pixels allocated by fg_image_read and clears *image. NULL and a cleared image are allowed. Never call it
 * on an image whose pixels are your own. */
FG_API void fg_image_free(fg_image* image);

/* ---- restoring ---- */

/* Called after each tile with the tiles done and the tiles in the image (and once with done = 0 before the
 * first). Return nonzero to stop: fg_restore then returns FG_ERROR_CANCELLED after the current tile. */
typedef int (*fg_progress_fn)(int64_t tiles_done, int64_t tiles_total, void* user_data);

typedef struct fg_restore_options {
  fg_mode mode;            /* FG_MODE_AUTO (the model's task), or the task asserted (a different one is an error) */
  int64_t tile;            /* the largest tile side in pixels (default 512; rounded down to the size multiple) */
  int64_t margin;          /* pixels discarded at inner tile edges; -1 (default): the model's default margin */
  int64_t ramp;            /* feathering width between tiles (default 32) */
  int threads;             /* OpenMP threads for this call; 0 (default): OpenMP's default */
  fg_progress_fn progress; /* may be NULL */
  void* user_data;         /* passed to progress */
} fg_restore_options;

/* Fills *options with the defaults. */
FG_API fg_status fg_restore_options_init(fg_restore_options* options);

/* Restores `input` into `output` (same width and height; any channels of 3 or 4, any sample type and stride;
 * output may be input itself, restoring in place when their layouts are the same). Alpha is copied from an RGBA
 * input, or set opaque when the input has none. `mask` (may be NULL): a 1-channel image of the same size that
 * receives the predicted damage mask, 1 where the model saw damage. options may be NULL (the defaults). */
FG_API fg_status fg_restore(fg_model* model, const fg_image* input, fg_image* output, fg_image* mask,
                            const fg_restore_options* options);

#ifdef __cplusplus
}
#endif

#endif /* FILMGRAD_FILMGRAD_H */
