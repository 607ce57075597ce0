/* Restores one image file with filmgrad's C API: reads it, restores it in memory, tiled, with a progress line, and
 * writes the result (and, when asked, the damage mask). Every call's status is checked and its message printed.
 *
 *   embed_c MODEL IN OUT [MASK]
 * MODEL: a run folder written by `filmgrad train` or its model.safetensors. IN and OUT: PNG, TIFF, JPEG, BMP or TGA;
 * OUT keeps IN's bit depth where its format holds it. Exit status 0 on success, 1 on any failure. */
#include <filmgrad/filmgrad.h>
#include <stdio.h>
#include <stdlib.h>

static int report(const char* what, fg_status status) {
  fprintf(stderr, "embed_c: %s failed (%s): %s\n", what, fg_status_name(status), fg_last_error());
  return 1;
}

static int show_progress(int64_t done, int64_t total, void* user_data) {
  (void)user_data;
  fprintf(stderr, "\rtile %lld of %lld", (long long)done, (long long)total);
  if (done == total) fputc('\n', stderr);
  return 0; /* nonzero would cancel the restore */
}

int main(int argc, char** argv) {
  fg_library_info info;
  fg_model* model = NULL;
  fg_model_info model_info;
  fg_image in = {0}, out = {0}, mask = {0};
  fg_restore_options options;
  fg_load_options load_options;
  fg_status status;
  int failed = 1;

  if (argc != 4 && argc != 5) {
    fprintf(stderr, "usage: embed_c MODEL IN OUT [MASK]\n");
    return 2;
  }
  /* Headers and library must agree. */
  if (fg_get_library_info(&info) != FG_OK) return report("fg_get_library_info", FG_ERROR_INTERNAL);
  if (info.version_major != FILMGRAD_VERSION_MAJOR || info.version_minor != FILMGRAD_VERSION_MINOR) {
    fprintf(stderr, "embed_c: built with filmgrad.h %d.%d but the library is %s\n", FILMGRAD_VERSION_MAJOR,
            FILMGRAD_VERSION_MINOR, info.version);
    return 1;
  }
  fprintf(stderr, "%s\n", info.description);

  /* A lower cache of freed blocks lowers the peak memory of a restore (what `filmgrad restore` does). */
  if ((status = fg_set_cpu_cache_limit(256)) != FG_OK) return report("fg_set_cpu_cache_limit", status);
  /* The inference mode folds the BatchNorms once after loading: the same result up to float rounding. */
  if ((status = fg_load_options_init(&load_options)) != FG_OK) return report("fg_load_options_init", status);
  load_options.inference_mode = 1;
  if ((status = fg_model_load(argv[1], &load_options, &model)) != FG_OK) return report("loading the model", status);
  if ((status = fg_model_get_info(model, &model_info)) != FG_OK) {
    report("fg_model_get_info", status);
    goto done;
  }
  fprintf(stderr, "model: %s, width %g, %s mode, %lld weights\n", model_info.model, model_info.width,
          model_info.mode == FG_MODE_NEGATIVE ? "negative" : "dust", (long long)model_info.parameters);

  if ((status = fg_image_read(argv[2], 0, &in)) != FG_OK) {
    report("reading the image", status);
    goto done;
  }
  /* The result and the mask in buffers of our own, packed (stride 0); the mask as 8-bit grey. */
  out = in;
  out.data = malloc((size_t)(in.width * in.height * in.channels) * (in.type == FG_U8 ? 1 : in.type == FG_U16 ? 2 : 4));
  out.stride = 0;
  mask = in;
  mask.channels = 1;
  mask.type = FG_U8;
  mask.stride = 0;
  mask.data = malloc((size_t)(in.width * in.height));
  if (out.data == NULL || mask.data == NULL) {
    fprintf(stderr, "embed_c: out of memory\n");
    goto done;
  }

  fg_restore_options_init(&options);
  options.progress = show_progress;
  if ((status = fg_restore(model, &in, &out, argc == 5 ? &mask : NULL, &options)) != FG_OK) {
    report("restoring", status);
    goto done;
  }
  if ((status = fg_image_write(argv[3], &out)) != FG_OK) {
    report("writing the result", status);
    goto done;
  }
  if (argc == 5 && (status = fg_image_write(argv[4], &mask)) != FG_OK) {
    report("writing the mask", status);
    goto done;
  }
  fprintf(stderr, "wrote %s (%lld x %lld)\n", argv[3], (long long)in.width, (long long)in.height);
  failed = 0;

done:
  free(out.data);
  free(mask.data);
  fg_image_free(&in);
  fg_model_free(model);
  return failed;
}
