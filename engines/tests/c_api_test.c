/* The C API, from C, against a real engine file: the streaming contract (causal and centred
 * modes, flushing, raw windows) and every refusal (null handle, wrong joint count, NaN,
 * confidence out of range, unknown and closed tracks, corrupt and foreign engine files), each with
 * its status code and a message that names the problem.
 *
 *   c_api_test ENGINE WORK_DIR
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kasf/kasf.h"

static int failures = 0;

#define EXPECT(condition, ...)                                   \
  do {                                                           \
    if (!(condition)) {                                          \
      fprintf(stderr, "%s:%d: FAILED %s: ", __FILE__, __LINE__, #condition); \
      fprintf(stderr, __VA_ARGS__);                              \
      fprintf(stderr, "\n");                                     \
      ++failures;                                                \
    }                                                            \
  } while (0)

/* The call returns status and its message contains every given fragment. */
static void expect_error(kasf_status got, kasf_status status, const char* fragment, const char* call) {
  const char* message = kasf_last_error();
  if (got != status) {
    fprintf(stderr, "FAILED %s: status %s, expected %s (message: %s)\n", call, kasf_status_name(got),
            kasf_status_name(status), message);
    ++failures;
  } else if (strstr(message, fragment) == NULL) {
    fprintf(stderr, "FAILED %s: message \"%s\" does not say \"%s\"\n", call, message, fragment);
    ++failures;
  }
}

#define EXPECT_ERROR(call, status, fragment) expect_error((call), (status), (fragment), #call)

static void person(float keypoints[KASF_NUM_JOINTS][3], float shift) {
  for (int j = 0; j < KASF_NUM_JOINTS; ++j) {
    keypoints[j][0] = 0.05f * (float)(j % 5) - 0.1f + shift;
    keypoints[j][1] = 0.04f * (float)j - 0.3f;
    keypoints[j][2] = 1.0f;
  }
}

static kasf_runtime* open_runtime(const char* engine, kasf_mode mode) {
  kasf_options options = kasf_default_options();
  options.mode = mode;
  options.threads = 1;
  kasf_runtime* runtime = NULL;
  kasf_status status = kasf_create(engine, &options, &runtime);
  if (status != KASF_OK) {
    fprintf(stderr, "cannot open %s: %s: %s\n", engine, kasf_status_name(status), kasf_last_error());
    exit(1);
  }
  return runtime;
}

static void write_file(const char* path, const char* bytes, size_t size) {
  FILE* file = fopen(path, "wb");
  if (file == NULL || fwrite(bytes, 1, size, file) != size) {
    fprintf(stderr, "cannot write %s\n", path);
    exit(1);
  }
  fclose(file);
}

static void truncated_copy(const char* from, const char* to) {
  FILE* file = fopen(from, "rb");
  if (file == NULL) {
    fprintf(stderr, "cannot read %s\n", from);
    exit(1);
  }
  fseek(file, 0, SEEK_END);
  long size = ftell(file);
  fseek(file, 0, SEEK_SET);
  char* bytes = malloc((size_t)size);
  if (bytes == NULL || fread(bytes, 1, (size_t)size, file) != (size_t)size) exit(1);
  fclose(file);
  write_file(to, bytes, (size_t)size / 2);
  free(bytes);
}

static void test_null_handles_and_arguments(void) {
  float keypoints[KASF_NUM_JOINTS][3];
  kasf_pose pose;
  int count = -1;
  person(keypoints, 0.0f);
  EXPECT_ERROR(kasf_push(NULL, 1, &keypoints[0][0], KASF_NUM_JOINTS), KASF_INVALID_ARGUMENT, "handle is NULL");
  EXPECT_ERROR(kasf_process(NULL, &count), KASF_INVALID_ARGUMENT, "kasf_process");
  EXPECT_ERROR(kasf_get_pose(NULL, 1, &pose), KASF_INVALID_ARGUMENT, "kasf_get_pose");
  EXPECT_ERROR(kasf_get_result(NULL, 0, &pose), KASF_INVALID_ARGUMENT, "kasf_get_result");
  EXPECT_ERROR(kasf_close_track(NULL, 1, &count), KASF_INVALID_ARGUMENT, "kasf_close_track");
  EXPECT_ERROR(kasf_close_all(NULL, &count), KASF_INVALID_ARGUMENT, "kasf_close_all");
  EXPECT_ERROR(kasf_infer(NULL, &keypoints[0][0], 1, &keypoints[0][0]), KASF_INVALID_ARGUMENT, "kasf_infer");
  EXPECT_ERROR(kasf_create("x.pt2", NULL, NULL), KASF_INVALID_ARGUMENT, "NULL");
  kasf_runtime* runtime = (kasf_runtime*)&count;
  EXPECT_ERROR(kasf_create(NULL, NULL, &runtime), KASF_INVALID_ARGUMENT, "engine_path is NULL");
  EXPECT(runtime == NULL, "a failed kasf_create must leave the handle NULL");
  EXPECT(kasf_n_frames(NULL) == 0 && kasf_num_tracks(NULL) == 0 && strcmp(kasf_backend_name(NULL), "") == 0 &&
             strcmp(kasf_engine_notes(NULL), "") == 0,
         "NULL handles read as empty");
  kasf_destroy(NULL);
}

/* Missing, truncated and foreign files with the engine's own suffix: its backend refuses them. */
static void test_engine_files(const char* engine, const char* work) {
  const char* suffix = strrchr(engine, '.');
  char path[4096];
  kasf_runtime* runtime = NULL;
  snprintf(path, sizeof(path), "/nonexistent/model%s", suffix);
  EXPECT_ERROR(kasf_create(path, NULL, &runtime), KASF_ENGINE_FILE, "does not exist");
  snprintf(path, sizeof(path), "%s/truncated%s", work, suffix);
  truncated_copy(engine, path);
  EXPECT_ERROR(kasf_create(path, NULL, &runtime), KASF_ENGINE_FILE, "truncated");
  snprintf(path, sizeof(path), "%s/foreign%s", work, suffix);
  write_file(path, "this is not a model\n", 20);
  EXPECT_ERROR(kasf_create(path, NULL, &runtime), KASF_ENGINE_FILE, "foreign");
  snprintf(path, sizeof(path), "%s/model.bin", work);
  write_file(path, "x", 1);
  EXPECT_ERROR(kasf_create(path, NULL, &runtime), KASF_ENGINE_FILE, "cannot tell the backend");
  kasf_options options = kasf_default_options();
  options.backend = "tflite";
  EXPECT_ERROR(kasf_create(engine, &options, &runtime), KASF_INVALID_ARGUMENT, "unknown backend 'tflite'");
  options = kasf_default_options();
  options.mode = 7;
  EXPECT_ERROR(kasf_create(engine, &options, &runtime), KASF_INVALID_ARGUMENT, "unknown mode 7");
  options = kasf_default_options();
  options.image_width = 1920.0f;
  EXPECT_ERROR(kasf_create(engine, &options, &runtime), KASF_INVALID_ARGUMENT, "both positive");
  options = kasf_default_options();
  options.stride = 0;
  EXPECT_ERROR(kasf_create(engine, &options, &runtime), KASF_INVALID_ARGUMENT, "stride must be at least 1, got 0");
  options = kasf_default_options();
  options.lag = 20;
  options.stride = 8;
  EXPECT_ERROR(kasf_create(engine, &options, &runtime), KASF_INVALID_ARGUMENT, "lag 20 + stride 8 = 28 is more than");
  options = kasf_default_options();
  options.lag = -2;
  EXPECT_ERROR(kasf_create(engine, &options, &runtime), KASF_INVALID_ARGUMENT, "lag must be at least 0");
  options = kasf_default_options();
  options.blend = 2;
  EXPECT_ERROR(kasf_create(engine, &options, &runtime), KASF_INVALID_ARGUMENT, "blend must be 0 or 1, got 2");
  EXPECT(runtime == NULL, "no handle after failures");
}

static void test_bad_keypoints(const char* engine) {
  kasf_runtime* runtime = open_runtime(engine, KASF_CAUSAL);
  float keypoints[KASF_NUM_JOINTS][3];
  int count = -1;
  person(keypoints, 0.0f);
  EXPECT_ERROR(kasf_push(runtime, 1, &keypoints[0][0], 16), KASF_BAD_INPUT, "must have shape [17, 3]");
  EXPECT_ERROR(kasf_push(runtime, 1, NULL, KASF_NUM_JOINTS), KASF_INVALID_ARGUMENT, "null pointer");
  keypoints[4][2] = NAN;
  EXPECT_ERROR(kasf_push(runtime, 1, &keypoints[0][0], KASF_NUM_JOINTS), KASF_BAD_INPUT,
               "joint 4 (left_hip) has a NaN confidence");
  person(keypoints, 0.0f);
  keypoints[2][2] = -0.5f;
  EXPECT_ERROR(kasf_push(runtime, 1, &keypoints[0][0], KASF_NUM_JOINTS), KASF_BAD_INPUT,
               "joint 2 (right_knee) has a confidence outside [0, 1]");
  person(keypoints, 0.0f);
  keypoints[9][0] = INFINITY;
  EXPECT_ERROR(kasf_push(runtime, 1, &keypoints[0][0], KASF_NUM_JOINTS), KASF_BAD_INPUT,
               "joint 9 (neck) has an infinite coordinate");
  person(keypoints, 0.0f);
  keypoints[0][1] = NAN;
  EXPECT_ERROR(kasf_push(runtime, 1, &keypoints[0][0], KASF_NUM_JOINTS), KASF_BAD_INPUT,
               "has NaN coordinates but confidence above 0");
  /* A missing joint (confidence 0) may have NaN coordinates. */
  keypoints[0][2] = 0.0f;
  EXPECT(kasf_push(runtime, 1, &keypoints[0][0], KASF_NUM_JOINTS) == KASF_OK, "%s", kasf_last_error());
  EXPECT(strcmp(kasf_last_error(), "") == 0, "a success clears the last error");
  EXPECT_ERROR(kasf_push(runtime, 1, &keypoints[0][0], KASF_NUM_JOINTS), KASF_BAD_INPUT, "already has keypoints");
  EXPECT(kasf_process(runtime, &count) == KASF_OK && count == 1, "one pose for the one good push, got %d", count);
  EXPECT_ERROR(kasf_close_track(runtime, 99, &count), KASF_UNKNOWN_TRACK, "was never opened");
  EXPECT(kasf_close_track(runtime, 1, &count) == KASF_OK && count == 0, "causal mode has nothing to flush");
  EXPECT_ERROR(kasf_close_track(runtime, 1, &count), KASF_CLOSED_TRACK, "already closed");
  person(keypoints, 0.0f);
  EXPECT_ERROR(kasf_push(runtime, 1, &keypoints[0][0], KASF_NUM_JOINTS), KASF_CLOSED_TRACK,
               "track 1 at frame 1: the track was closed at frame 1");
  kasf_pose pose;
  EXPECT_ERROR(kasf_get_result(runtime, 5, &pose), KASF_INVALID_ARGUMENT, "index 5");
  EXPECT_ERROR(kasf_get_pose(runtime, 1, NULL), KASF_INVALID_ARGUMENT, "pose is NULL");
  kasf_destroy(runtime);
}

static void test_causal_stream(const char* engine) {
  kasf_runtime* runtime = open_runtime(engine, KASF_CAUSAL);
  float keypoints[KASF_NUM_JOINTS][3];
  kasf_pose pose;
  int count = 0;
  for (int frame = 0; frame < 30; ++frame) {
    person(keypoints, 0.001f * (float)frame);
    EXPECT(kasf_push(runtime, 7, &keypoints[0][0], KASF_NUM_JOINTS) == KASF_OK, "%s", kasf_last_error());
    if (frame >= 10) {
      person(keypoints, -0.2f);
      EXPECT(kasf_push(runtime, 8, &keypoints[0][0], KASF_NUM_JOINTS) == KASF_OK, "%s", kasf_last_error());
    }
    EXPECT(kasf_process(runtime, &count) == KASF_OK, "%s", kasf_last_error());
    EXPECT(count == (frame >= 10 ? 2 : 1), "frame %d: %d poses", frame, count);
    EXPECT(kasf_get_pose(runtime, 7, &pose) == KASF_OK && pose.frame == frame && pose.track_frame == frame,
           "frame %d: track 7's pose is its newest frame", frame);
    EXPECT(isfinite(pose.joints[0][0]) && isfinite(pose.joints[16][2]), "poses are finite");
  }
  EXPECT(kasf_num_tracks(runtime) == 2, "two open tracks");
  EXPECT(strcmp(kasf_engine_notes(runtime), "") == 0, "no notes on a CPU engine: %s", kasf_engine_notes(runtime));
  EXPECT(kasf_get_pose(runtime, 8, &pose) == KASF_OK && pose.track_frame == 19, "track 8 is 20 frames old");
  EXPECT_ERROR(kasf_get_pose(runtime, 9, &pose), KASF_NOT_READY, "track 9 has no pose");
  kasf_destroy(runtime);
}

static void test_centred_stream_and_flush(const char* engine) {
  kasf_runtime* runtime = open_runtime(engine, KASF_CENTRED);
  const int delay = kasf_n_frames(runtime) / 2;
  float keypoints[KASF_NUM_JOINTS][3];
  kasf_pose pose;
  int count = 0;
  for (int frame = 0; frame < 20; ++frame) {
    person(keypoints, 0.002f * (float)frame);
    EXPECT(kasf_push(runtime, 3, &keypoints[0][0], KASF_NUM_JOINTS) == KASF_OK, "%s", kasf_last_error());
    EXPECT(kasf_process(runtime, &count) == KASF_OK, "%s", kasf_last_error());
    EXPECT(count == (frame >= delay ? 1 : 0), "frame %d: %d poses (delay %d)", frame, count, delay);
    if (frame < delay) EXPECT_ERROR(kasf_get_pose(runtime, 3, &pose), KASF_NOT_READY, "13 frames late");
  }
  EXPECT(kasf_get_pose(runtime, 3, &pose) == KASF_OK && pose.track_frame == 19 - delay, "centred: frame 19 - delay");
  EXPECT(kasf_close_all(runtime, &count) == KASF_OK && count == delay, "closing flushes %d poses, got %d", delay, count);
  for (int i = 0; i < count; ++i) {
    EXPECT(kasf_get_result(runtime, i, &pose) == KASF_OK && pose.track_frame == 20 - delay + i,
           "flushed pose %d is track frame %lld", i, (long long)pose.track_frame);
  }
  EXPECT(kasf_num_tracks(runtime) == 0, "no open track after close_all");
  kasf_destroy(runtime);
}

static void test_raw_windows(const char* engine) {
  kasf_runtime* runtime = open_runtime(engine, KASF_CAUSAL);
  const int n_frames = kasf_n_frames(runtime);
  const size_t clip = (size_t)n_frames * KASF_NUM_JOINTS * 3;
  float* keypoints = calloc(2 * clip, sizeof(float));
  float* poses = calloc(2 * clip, sizeof(float));
  for (size_t i = 0; i < 2 * clip; ++i) keypoints[i] = i % 3 == 2 ? 1.0f : 0.001f * (float)(i % 97);
  EXPECT(kasf_infer(runtime, keypoints, 2, poses) == KASF_OK, "%s", kasf_last_error());
  EXPECT(isfinite(poses[clip + 5]) && poses[5] != 0.0f, "poses come back");
  EXPECT_ERROR(kasf_infer(runtime, keypoints, 0, poses), KASF_BAD_INPUT, "batch 0");
  /* Past the largest batch: refused before the buffers are read (where the engine has a small one). */
  if (kasf_max_batch(runtime) < 64) {
    EXPECT_ERROR(kasf_infer(runtime, keypoints, kasf_max_batch(runtime) + 1, poses), KASF_BAD_INPUT, "batch");
  }
  free(keypoints);
  free(poses);
  kasf_destroy(runtime);
}

int main(int argc, char** argv) {
  if (argc != 3) {
    fprintf(stderr, "usage: c_api_test ENGINE WORK_DIR\n");
    return 2;
  }
  printf("kasf %s, backends: %s\n", kasf_version(), kasf_available_backends());
  test_null_handles_and_arguments();
  test_engine_files(argv[1], argv[2]);
  test_bad_keypoints(argv[1]);
  test_causal_stream(argv[1]);
  test_centred_stream_and_flush(argv[1]);
  test_raw_windows(argv[1]);
  if (failures > 0) {
    printf("c_api_test: %d checks failed\n", failures);
    return 1;
  }
  printf("c_api_test: all checks passed\n");
  return 0;
}
