/* kasf C API: lift per-frame 2D keypoints of tracked people to 3D poses with a KASportsFormer
 * engine file, inside a capture app.
 *
 * Per frame: kasf_push() the keypoints of each person seen (any number of tracks), then
 * kasf_process() once: every track's 27-frame window goes through one engine call, and the
 * poses that became ready are read with kasf_get_pose() (by track) or kasf_get_result() (by
 * index) until the next kasf_process() / kasf_close_track() / kasf_close_all().
 *
 * The window logic is the Python runtime's (kasf.stream.StreamRuntime): every `stride` frames of a
 * track its window goes through the engine and returns the poses `lag` to `lag + stride - 1`
 * frames behind its newest keypoints (tracks staggered by id: the phase is the id times a step
 * coprime to stride that spreads consecutive ids over it, modulo stride);
 * causal mode is lag 0, centred mode lag 13, both stride 1; with blend, a returned pose is the
 * mean of every window that held its frame; closing a track flushes its pending poses; windows
 * are padded by repeating a track's first and last frames; missing joints (confidence 0, their
 * coordinates may be NaN) keep confidence 0 and take the joint's last seen position, else the
 * frame's pelvis, else the mean of the frame's seen joints, else the track's previous anchor.
 * A closed track's id cannot be used again.
 *
 * Every function returns a kasf_status; on failure kasf_last_error() says what went wrong. A
 * runtime is not thread-safe: use one per thread, or serialise calls to it.
 */
#ifndef KASF_H
#define KASF_H

#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#if defined(KASF_BUILDING)
#define KASF_API __attribute__((visibility("default")))
#else
#define KASF_API
#endif

#define KASF_NUM_JOINTS 17 /* Human3.6M joints, in kasf.keypoints.skeleton.JOINT_NAMES order */

typedef enum kasf_status {
  KASF_OK = 0,
  KASF_INVALID_ARGUMENT = 1, /* a null pointer, an unknown option value */
  KASF_BAD_INPUT = 2,        /* wrong joint count, NaN/Inf, confidence outside [0, 1] */
  KASF_UNKNOWN_TRACK = 3,    /* a track id that is not open */
  KASF_CLOSED_TRACK = 4,     /* keypoints for a track that was closed */
  KASF_NOT_READY = 5,        /* no pose for that track from the last call (centred mode's first frames) */
  KASF_ENGINE_FILE = 6,      /* a missing, corrupt, foreign or incompatible engine file */
  KASF_BACKEND_ERROR = 7,    /* the backend failed while running */
  KASF_UNSUPPORTED = 8       /* a backend this build of the library was configured without */
} kasf_status;

typedef enum kasf_mode {
  KASF_CAUSAL = 0,  /* the newest frame of the window: no delay */
  KASF_CENTRED = 1  /* the window's middle frame: 13 frames of delay, the model's best accuracy */
} kasf_mode;

typedef struct kasf_options {
  int mode;            /* a kasf_mode (an int, so that any value a caller stores can be checked) */
  float image_width;   /* keypoints in pixels of this image size; both 0: already in normalised */
  float image_height;  /* screen units (kasf.normalization) */
  int close_after;     /* close a track after this many frames without keypoints for it; 0: never */
  int threads;         /* CPU threads of the backend; 0: its default */
  int device;          /* CUDA device index, for GPU backends */
  const char* backend; /* "aoti", "onnxruntime", "tensorrt"; NULL: from the engine file's suffix */
  int lag;             /* frames the newest returned pose lies behind the newest keypoints; -1: the mode's */
  int stride;          /* poses one engine window returns per track, every stride frames; lag + stride <= 27 */
  int blend;           /* 1: a returned pose is the mean of every window that held its frame; 0: its last window's */
} kasf_options;

typedef struct kasf_pose {
  int64_t track_id;
  int64_t frame;       /* the runtime frame (count of kasf_process calls before it) that brought the keypoints */
  int64_t track_frame; /* the same frame counted within its track, from 0 */
  float joints[KASF_NUM_JOINTS][3]; /* root-relative, in normalised screen units */
} kasf_pose;

typedef struct kasf_runtime kasf_runtime;

/* Causal mode (lag -1: the mode's; stride 1; no blending), normalised keypoints, no auto-close, default threads,
 * device 0, backend by suffix. */
KASF_API kasf_options kasf_default_options(void);

KASF_API kasf_status kasf_create(const char* engine_path, const kasf_options* options, kasf_runtime** runtime);
KASF_API void kasf_destroy(kasf_runtime* runtime); /* NULL is allowed */

/* keypoints: num_joints rows of (x, y, confidence); num_joints must be KASF_NUM_JOINTS. Checked
 * at once; staged for the next kasf_process(). A rejected push leaves other pushes staged. */
KASF_API kasf_status kasf_push(kasf_runtime* runtime, int64_t track_id, const float* keypoints, int num_joints);

/* Ends the frame: one engine call for all staged tracks. num_poses (may be NULL): poses ready. */
KASF_API kasf_status kasf_process(kasf_runtime* runtime, int* num_poses);

/* A track's pose from the last call; KASF_NOT_READY when that call brought none for it. With
 * several (a closed track's flush in centred mode), the latest frame. */
KASF_API kasf_status kasf_get_pose(const kasf_runtime* runtime, int64_t track_id, kasf_pose* pose);

/* Pose number index (0 <= index < num_poses) of the last call. */
KASF_API kasf_status kasf_get_result(const kasf_runtime* runtime, int index, kasf_pose* pose);

/* End a track, or all open tracks; in centred mode their pending poses are flushed and become
 * the results of this call (num_poses may be NULL). Staged pushes stay staged. */
KASF_API kasf_status kasf_close_track(kasf_runtime* runtime, int64_t track_id, int* num_poses);
KASF_API kasf_status kasf_close_all(kasf_runtime* runtime, int* num_poses);

/* Whole windows straight through the engine, without the streaming logic: keypoints and poses
 * are [batch, n_frames, 17, 3] float32 in normalised units (what kasf_bench times). */
KASF_API kasf_status kasf_infer(kasf_runtime* runtime, const float* keypoints, int64_t batch, float* poses);

KASF_API int kasf_n_frames(const kasf_runtime* runtime);       /* 0 for NULL */
KASF_API int kasf_max_batch(const kasf_runtime* runtime);      /* the engine's largest batch; 0 for NULL */
KASF_API int kasf_num_tracks(const kasf_runtime* runtime);     /* open tracks; 0 for NULL */
KASF_API const char* kasf_backend_name(const kasf_runtime* runtime); /* "" for NULL */
/* What the backend accepted but a user should know (a TensorRT plan built on another GPU model of
 * the same compute capability: its kernels were timed there); "" when nothing, or for NULL. */
KASF_API const char* kasf_engine_notes(const kasf_runtime* runtime);

/* The calling thread's last error message ("" after a success); valid until its next kasf call. */
KASF_API const char* kasf_last_error(void);
KASF_API const char* kasf_status_name(kasf_status status);
KASF_API const char* kasf_joint_name(int joint); /* "pelvis", ... ; "" outside 0..16 */
KASF_API const char* kasf_version(void);
/* Comma-separated backends compiled into this library, e.g. "aoti,onnxruntime". */
KASF_API const char* kasf_available_backends(void);

#ifdef __cplusplus
}
#endif

#endif /* KASF_H */
