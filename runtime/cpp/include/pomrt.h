/*
 * pomrt: the PoM-DiT frame-by-frame video runtime, as a C API (docs/design.md §3, §6).
 *
 * Every function catches every C++ exception and returns a status code; on failure the
 * message is in pomrt_last_error() (a thread-local string, valid until the next pomrt call
 * on the same thread). A handle is not thread-safe: use one handle per thread, or lock.
 *
 * Two groups of functions:
 *   - CPU-only (no GPU, no TensorRT needed, always available): artifact verification and
 *     model info, the sampler's time schedule, the deterministic frame noise, loading the
 *     plugin library (through TensorRT's plugin registry in a TensorRT build).
 *   - Runtime (needs a library built with POMRT_WITH_TENSORRT=ON, TensorRT and a GPU):
 *     pomrt_create / pomrt_reset_stream / pomrt_next_frame / pomrt_destroy, and with the
 *     artifact's decoder engines pomrt_decode_info / pomrt_next_rgb. In a CPU-only build they
 *     return POMRT_ERR_UNSUPPORTED.
 */
#ifndef POMRT_H
#define POMRT_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#if defined(_WIN32)
#define POMRT_API __declspec(dllexport)
#else
#define POMRT_API __attribute__((visibility("default")))
#endif

/* Bumped when a struct below changes layout; callers pass sizeof(...) to detect mismatch. */
#define POMRT_ABI_VERSION 1

typedef enum pomrt_status
{
    POMRT_OK = 0,
    POMRT_ERR_INVALID_ARGUMENT = 1, /* null pointer, out-of-range slot/label/steps, bad option */
    POMRT_ERR_ARTIFACT = 2,         /* manifest missing/malformed, hash mismatch, unsafe path */
    POMRT_ERR_STATE = 3,            /* slot not started, frame not read before advancing */
    POMRT_ERR_BUFFER_TOO_SMALL = 4, /* caller buffer smaller than the frame / message */
    POMRT_ERR_UNSUPPORTED = 5,      /* built without TensorRT, or a model this runtime can't drive */
    POMRT_ERR_PLUGIN = 6,           /* PolyMixer plugin library missing, unverified or not loadable */
    POMRT_ERR_TENSORRT = 7,         /* engine build/deserialisation/enqueue failed */
    POMRT_ERR_CUDA = 8,             /* a CUDA runtime call failed */
    POMRT_ERR_INTERNAL = 9          /* anything else (bug, out of host memory) */
} pomrt_status;

typedef struct pomrt_runtime pomrt_runtime; /* opaque */

/* Options of pomrt_create. Fill with pomrt_default_options, then change fields. */
typedef struct pomrt_options
{
    size_t struct_size;       /* sizeof(pomrt_options), set by pomrt_default_options */
    int32_t slots;            /* independent streams in one batch (default 1) */
    int32_t steps;            /* Euler steps per frame (default 20) */
    float cfg_scale;          /* classifier-free guidance; 1 = off (default 2; doubles rows) */
    float shift;              /* SD3 time shift of the schedule (default 1) */
    int32_t device;           /* CUDA device ordinal (default 0) */
    int32_t prefer_plugin;    /* 1: the plugin ONNX flavor when a plugin library is given */
    const char* plugin_path;  /* PolyMixer plugin .so (NULL: the one listed in the manifest) */
    const char* plugin_sha256;/* required with plugin_path when the manifest does not list it */
    const char* engine_path;  /* explicit .plan (NULL: engines/<gpu>-sm<NN>-trt<ver>.plan) */
    int32_t build_if_missing; /* 1 (default): build from the ONNX and cache when no plan */
    uint64_t workspace_bytes; /* builder workspace cap, 0 = TensorRT default (device memory) */
    int32_t verbose;          /* 0 warnings, 1 info, 2 verbose TensorRT logging to stderr */
} pomrt_options;

/* Model facts read from a verified manifest (pomrt_artifact_info) or a runtime (pomrt_info). */
typedef struct pomrt_model_info
{
    size_t struct_size;
    int32_t in_channels, height, width; /* one frame: in_channels x height x width fp32 */
    int32_t depth, state_width;         /* L, C: the state is L x C fp32 per row */
    int32_t tokens_per_frame, num_classes;
    int32_t batch_min, batch_opt, batch_max; /* optimisation profile of the engine */
    int32_t video;                      /* 0: image model (no state) */
    int32_t slots, rows;                /* runtime only: slots and batch rows (2x with CFG) */
    char precision[8];                  /* fp32 | fp16 | int8 */
    char variant[16];                   /* moments | powers */
    char model_name[64];
} pomrt_model_info;

/* The latent decoder stage of an artifact (manifest "decoder", docs/design.md §6.2; issue 21),
 * from pomrt_artifact_decoder. Shapes are the graphs' (batch 1, fp32 at their border):
 *   image:      latent latent_channels x latent_height x latent_width -> frames_first RGB frame
 *               3 x rgb_height x rgb_width per call (graph "decode");
 *   wan-stream: the same latent, one frame per call: a stream's first call runs graph "first"
 *               (frames_first RGB frames), every later one "next" (frames_next RGB frames) on
 *               the causal-convolution caches (cache_tensors tensors, cache_floats fp32 per
 *               stream and cache set; two sets per stream, ping-pong). */
typedef struct pomrt_decoder_info
{
    size_t struct_size;                        /* sizeof(pomrt_decoder_info), set by the caller */
    int32_t has_decoder;                       /* 0: no decoder stage (every other field is 0) */
    int32_t streaming;                         /* 1: wan-stream, 0: image */
    int32_t latent_channels, latent_height, latent_width;
    int32_t rgb_height, rgb_width;
    int32_t frames_first, frames_next;         /* RGB frames per call (image: both the same) */
    int32_t cache_tensors;
    int64_t cache_floats;
    char kind[16];                             /* image | wan-stream */
    char precision[8];                         /* fp32 | fp16 (inside the graph) */
    char source_class[32];                     /* AutoencoderKL | AutoencoderTiny | AutoencoderKLWan */
} pomrt_decoder_info;

/* Whether a runtime decodes its latents into RGB frames (pomrt_decode_info; issue 21): it does
 * when the artifact has a decoder stage and, for every decoder graph, the TensorRT engine built
 * for this GPU and TensorRT release (decoder/<role>-<gpu>-sm<NN>-trt<ver>.plan, recorded as
 * built from that graph in the decoder entry's "engines" or in device.json, where the bundle's
 * build.sh records the plans it builds on the device). Otherwise decodes = 0, reason says why,
 * and the runtime works as without a decoder (pomrt_next_frame returns latents). */
typedef struct pomrt_rgb_info
{
    size_t struct_size;                /* sizeof(pomrt_rgb_info), set by the caller */
    int32_t decodes;                   /* 1: pomrt_next_rgb returns decoded frames */
    int32_t channels, height, width;   /* one RGB frame: 3 x height x width fp32, about [-1, 1] */
    int32_t frames_first, frames_next; /* RGB frames of a stream's first latent frame, of each later one */
    char reason[256];                  /* decodes = 0: why (no decoder stage, no engine for this GPU, ...) */
} pomrt_rgb_info;

/* Thread-local message of the last failed call on this thread ("" after a success). */
POMRT_API const char* pomrt_last_error(void);

/* Library version string, and whether the TensorRT runtime part is built in (1) or not (0). */
POMRT_API const char* pomrt_version(void);
POMRT_API int32_t pomrt_has_tensorrt(void);

/* ---- CPU-only entry points -------------------------------------------------------------- */

/* Check an artifact directory: manifest.json readable and of the pomexport-artifact format,
 * every listed file inside the directory (no "..", no absolute path, no symlink leaving it),
 * present, not hard-linked and matching its sha256, and no unlisted regular file (dot-files
 * excepted).
 * On failure the message (one line naming the file) is also copied into err_buf. */
POMRT_API pomrt_status pomrt_verify_artifact(const char* artifact_dir, char* err_buf, size_t err_len);

/* Verify like pomrt_verify_artifact, then fill *info from the manifest. */
POMRT_API pomrt_status pomrt_artifact_info(const char* artifact_dir, pomrt_model_info* info);

/* Verify like pomrt_verify_artifact, then fill *info (info->struct_size set by the caller)
 * from the manifest's decoder entry, checked as the Python loader checks it (kind and its
 * roles, precision, batch 1, files decoder/<role>.onnx and listed, frames_per_step >= 1, each
 * graph's inputs and outputs: names in order, dtypes, static dims). An artifact without a
 * decoder: POMRT_OK and info->has_decoder = 0. A TensorRT runtime runs it when it has the
 * decoder engines of its GPU (pomrt_artifact_decoder_engine, pomrt_decode_info). */
POMRT_API pomrt_status pomrt_artifact_decoder(const char* artifact_dir, pomrt_decoder_info* info);

/* Verify, then the plan a runtime on TensorRT `trt_version` ("major.minor[.patch[.build]]"),
 * GPU `gpu_name` (the CUDA device name) of SM `sm` (major * 10 + minor) runs for decoder role
 * `role` (decode | first | next): decoder/<role>-<gpu>-sm<NN>-trt<major.minor.patch>.plan,
 * listed and recorded as built from that role's graph for that target, in the manifest's
 * decoder entry or in device.json. The name goes into plan (NUL-terminated, truncated to
 * plan_len). POMRT_ERR_UNSUPPORTED when there is none (no decoder stage, plan absent, no
 * record, built from an earlier graph, recorded for another target: the message says which);
 * POMRT_ERR_INVALID_ARGUMENT for a role the decoder kind does not have. */
POMRT_API pomrt_status pomrt_artifact_decoder_engine(const char* artifact_dir, const char* role,
    const char* trt_version, const char* gpu_name, int32_t sm, char* plan, size_t plan_len);

/* steps + 1 decreasing times from 1 to 0 (uniform, then t' = s t / (1 + (s - 1) t)), exactly
 * as pomexport.runtime.sampler.time_schedule: out must hold steps + 1 floats. */
POMRT_API pomrt_status pomrt_schedule(int32_t steps, float shift, float* out);

/* The initial noise of one frame, `count` standard-normal floats from (seed, stream, frame),
 * the same values the GPU runtime draws (counter-based, see README "Noise"). */
POMRT_API pomrt_status pomrt_noise(uint64_t seed, uint64_t stream, uint64_t frame, size_t count, float* out);

/* ---- the PolyMixer plugin library ---------------------------------------------------------- */

typedef struct pomrt_plugin pomrt_plugin; /* opaque: one use of a loaded plugin library */

/* Check that the file at `path` has the sha256 `sha256` (64 hex digits), then load the plugin
 * library once per process: a library already loaded through pomrt (same sha256, at any path)
 * is shared, not loaded again, because TensorRT's IPluginRegistry::loadLibrary refuses a
 * library whose creators are already registered. pomrt_create uses the same table, so runtimes
 * and callers of this function share one load. In a TensorRT build the library is registered
 * with TensorRT's plugin registry and must then provide the PolyMixer v1 creator in namespace
 * "pomexport" (when another loader of the process, e.g. Python's tensorrt, registered it first,
 * that registration is used); without TensorRT it is dlopen'ed and must export getCreators.
 * Fails with POMRT_ERR_PLUGIN (message says why) on a hash mismatch, a different build of the
 * plugin already loaded, or a library TensorRT (or dlopen) refuses. Release with
 * pomrt_plugin_release; the library is unloaded with its last release. */
POMRT_API pomrt_status pomrt_plugin_load(const char* path, const char* sha256, pomrt_plugin** out);

/* 1 when this handle shares a load made earlier in the process, 0 when it made the load. */
POMRT_API int32_t pomrt_plugin_reused(const pomrt_plugin* plugin);

/* End this use of the library. NULL is accepted. */
POMRT_API void pomrt_plugin_release(pomrt_plugin* plugin);

/* Plugin libraries currently loaded through pomrt in this process (each counted once). */
POMRT_API int32_t pomrt_plugins_loaded(void);

/* ---- runtime (TensorRT + CUDA) ------------------------------------------------------------ */

POMRT_API void pomrt_default_options(pomrt_options* options);

/* Verify the artifact, load (or build and cache) the engine, allocate every device buffer.
 * options may be NULL (defaults). On failure *out is NULL. */
POMRT_API pomrt_status pomrt_create(const char* artifact_dir, const pomrt_options* options, pomrt_runtime** out);

/* Model and batch facts of a runtime. */
POMRT_API pomrt_status pomrt_info(const pomrt_runtime* rt, pomrt_model_info* info);

/* Start a new stream in `slot` (frame 0, empty state; the other slots are untouched).
 * label in [0, num_classes] (num_classes = unconditional); label < 0 frees the slot. */
POMRT_API pomrt_status pomrt_reset_stream(pomrt_runtime* rt, int32_t slot, uint64_t seed, int32_t label);

/* The next frame of `slot` as in_channels x height x width fp32 (images in about [-1, 1])
 * into out (size bytes). All active slots advance together: when `slot` has no unread frame,
 * one batch frame is generated for every active slot; it fails with POMRT_ERR_STATE if
 * another active slot still has an unread frame (read every active slot once per frame). */
POMRT_API pomrt_status pomrt_next_frame(pomrt_runtime* rt, int32_t slot, float* out, size_t size);

/* Whether `rt` decodes, and the RGB frame shape (info->struct_size set by the caller). */
POMRT_API pomrt_status pomrt_decode_info(const pomrt_runtime* rt, pomrt_rgb_info* info);

/* The next decoded RGB frames of `slot`, each 3 x height x width fp32 (pomrt_decode_info), as
 * many queued ones as fit into out (size bytes; at least one must fit, else
 * POMRT_ERR_BUFFER_TOO_SMALL); *frames_written says how many. After each committed frame
 * every active slot's latent is decoded at batch 1 (a wan-stream slot: frames_first RGB frames
 * for its first latent frame, frames_next for each later one, on its own causal caches, which
 * pomrt_reset_stream restarts); the frames queue per slot. When `slot` has none queued the
 * batch advances as in pomrt_next_frame (POMRT_ERR_STATE while another active slot has an
 * unread frame). A slot's frame counts as read once its latent was read (pomrt_next_frame) or
 * its last queued RGB frame was; RGB frames not read when the batch advances are dropped.
 * POMRT_ERR_UNSUPPORTED when the runtime does not decode (the message gives the reason). */
POMRT_API pomrt_status pomrt_next_rgb(pomrt_runtime* rt, int32_t slot, float* out, size_t size, int32_t* frames_written);

/* Free every device buffer and the engine. NULL is accepted. */
POMRT_API void pomrt_destroy(pomrt_runtime* rt);

#ifdef __cplusplus
}
#endif

#endif /* POMRT_H */
