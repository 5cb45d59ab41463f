// The C API over StreamRuntime: every C++ exception becomes a status code and the thread's last
// error message; nothing is thrown across the C boundary.
#include <cstring>
#include <string>

#include "kasf/kasf.h"
#include "stream.hpp"

struct kasf_runtime {
  std::unique_ptr<kasf::StreamRuntime> stream;
  std::string backend_name;
  std::string notes;
};

namespace {

// kasf::Error carries kasf::Status; the C API hands the same numbers out as kasf_status.
static_assert(static_cast<int>(kasf::Status::InvalidArgument) == KASF_INVALID_ARGUMENT &&
              static_cast<int>(kasf::Status::BadInput) == KASF_BAD_INPUT &&
              static_cast<int>(kasf::Status::UnknownTrack) == KASF_UNKNOWN_TRACK &&
              static_cast<int>(kasf::Status::ClosedTrack) == KASF_CLOSED_TRACK &&
              static_cast<int>(kasf::Status::NotReady) == KASF_NOT_READY &&
              static_cast<int>(kasf::Status::EngineFile) == KASF_ENGINE_FILE &&
              static_cast<int>(kasf::Status::Backend) == KASF_BACKEND_ERROR &&
              static_cast<int>(kasf::Status::Unsupported) == KASF_UNSUPPORTED,
              "kasf::Status and kasf_status disagree");

thread_local std::string last_error;

kasf_status fail(kasf_status status, const std::string& message) {
  last_error = message;
  return status;
}

// Runs body, mapping what it throws to a status; clears the last error on success.
template <typename Body>
kasf_status guarded(Body&& body) {
  try {
    body();
    last_error.clear();
    return KASF_OK;
  } catch (const kasf::Error& err) {
    return fail(static_cast<kasf_status>(err.status()), err.what());
  } catch (const std::bad_alloc&) {
    return fail(KASF_BACKEND_ERROR, "out of memory");
  } catch (const std::exception& err) {
    return fail(KASF_BACKEND_ERROR, err.what());
  }
}

kasf_status null_runtime(const char* function) {
  return fail(KASF_INVALID_ARGUMENT, std::string(function) + ": the runtime handle is NULL (kasf_create failed, "
                                                             "or was not called)");
}

void to_pose(const kasf::PoseResult& result, kasf_pose* pose) {
  pose->track_id = result.track_id;
  pose->frame = result.frame;
  pose->track_frame = result.track_frame;
  std::memcpy(pose->joints, result.pose.data(), sizeof(pose->joints));
}

kasf_status count_results(kasf_runtime* runtime, int* num_poses) {
  if (num_poses != nullptr) *num_poses = static_cast<int>(runtime->stream->results().size());
  return KASF_OK;
}

}  // namespace

extern "C" {

kasf_options kasf_default_options(void) {
  kasf_options options;
  options.mode = KASF_CAUSAL;
  options.image_width = 0.0f;
  options.image_height = 0.0f;
  options.close_after = 0;
  options.threads = 0;
  options.device = 0;
  options.backend = nullptr;
  options.lag = -1;
  options.stride = 1;
  options.blend = 0;
  return options;
}

kasf_status kasf_create(const char* engine_path, const kasf_options* options, kasf_runtime** runtime) {
  if (runtime == nullptr) return fail(KASF_INVALID_ARGUMENT, "kasf_create: runtime (the handle's address) is NULL");
  *runtime = nullptr;
  if (engine_path == nullptr) return fail(KASF_INVALID_ARGUMENT, "kasf_create: engine_path is NULL");
  const kasf_options chosen = options != nullptr ? *options : kasf_default_options();
  if (chosen.mode != KASF_CAUSAL && chosen.mode != KASF_CENTRED) {
    return fail(KASF_INVALID_ARGUMENT, "kasf_create: unknown mode " + std::to_string(chosen.mode) +
                                           ": choose KASF_CAUSAL or KASF_CENTRED");
  }
  if (chosen.blend != 0 && chosen.blend != 1) {
    return fail(KASF_INVALID_ARGUMENT, "kasf_create: blend must be 0 or 1, got " + std::to_string(chosen.blend));
  }
  return guarded([&] {
    kasf::BackendOptions backend_options;
    backend_options.threads = chosen.threads;
    backend_options.device = chosen.device;
    kasf::StreamOptions stream_options;
    stream_options.mode = chosen.mode == KASF_CAUSAL ? kasf::Mode::Causal : kasf::Mode::Centred;
    stream_options.image_width = chosen.image_width;
    stream_options.image_height = chosen.image_height;
    stream_options.close_after = chosen.close_after;
    stream_options.lag = chosen.lag;
    stream_options.stride = chosen.stride;
    stream_options.blend = chosen.blend == 1;
    auto backend = kasf::open_backend(engine_path, chosen.backend != nullptr ? chosen.backend : "", backend_options);
    auto created = std::make_unique<kasf_runtime>();
    created->backend_name = backend->name();
    created->notes = backend->notes();
    created->stream = std::make_unique<kasf::StreamRuntime>(std::move(backend), stream_options);
    *runtime = created.release();
  });
}

void kasf_destroy(kasf_runtime* runtime) { delete runtime; }

kasf_status kasf_push(kasf_runtime* runtime, int64_t track_id, const float* keypoints, int num_joints) {
  if (runtime == nullptr) return null_runtime("kasf_push");
  return guarded([&] { runtime->stream->push(track_id, keypoints, num_joints); });
}

kasf_status kasf_process(kasf_runtime* runtime, int* num_poses) {
  if (runtime == nullptr) return null_runtime("kasf_process");
  const kasf_status status = guarded([&] { runtime->stream->process(); });
  return status == KASF_OK ? count_results(runtime, num_poses) : status;
}

kasf_status kasf_get_pose(const kasf_runtime* runtime, int64_t track_id, kasf_pose* pose) {
  if (runtime == nullptr) return null_runtime("kasf_get_pose");
  if (pose == nullptr) return fail(KASF_INVALID_ARGUMENT, "kasf_get_pose: pose is NULL");
  const auto& results = runtime->stream->results();
  for (auto result = results.rbegin(); result != results.rend(); ++result) {
    if (result->track_id == track_id) {
      to_pose(*result, pose);
      last_error.clear();
      return KASF_OK;
    }
  }
  const int lag = runtime->stream->lag(), latest = lag + runtime->stream->stride() - 1;
  const std::string late = std::to_string(lag) + (latest == lag ? "" : " to " + std::to_string(latest));
  return fail(KASF_NOT_READY, "track " + std::to_string(track_id) + " has no pose from the last call (this runtime "
                                  "returns a track's poses " + late + " frames late)");
}

kasf_status kasf_get_result(const kasf_runtime* runtime, int index, kasf_pose* pose) {
  if (runtime == nullptr) return null_runtime("kasf_get_result");
  if (pose == nullptr) return fail(KASF_INVALID_ARGUMENT, "kasf_get_result: pose is NULL");
  const auto& results = runtime->stream->results();
  if (index < 0 || static_cast<size_t>(index) >= results.size()) {
    return fail(KASF_INVALID_ARGUMENT, "kasf_get_result: index " + std::to_string(index) + " is outside the " +
                                           std::to_string(results.size()) + " poses of the last call");
  }
  to_pose(results[index], pose);
  last_error.clear();
  return KASF_OK;
}

kasf_status kasf_close_track(kasf_runtime* runtime, int64_t track_id, int* num_poses) {
  if (runtime == nullptr) return null_runtime("kasf_close_track");
  const kasf_status status = guarded([&] { runtime->stream->close(track_id); });
  return status == KASF_OK ? count_results(runtime, num_poses) : status;
}

kasf_status kasf_close_all(kasf_runtime* runtime, int* num_poses) {
  if (runtime == nullptr) return null_runtime("kasf_close_all");
  const kasf_status status = guarded([&] { runtime->stream->close_all(); });
  return status == KASF_OK ? count_results(runtime, num_poses) : status;
}

kasf_status kasf_infer(kasf_runtime* runtime, const float* keypoints, int64_t batch, float* poses) {
  if (runtime == nullptr) return null_runtime("kasf_infer");
  if (keypoints == nullptr || poses == nullptr) return fail(KASF_INVALID_ARGUMENT, "kasf_infer: keypoints or poses is NULL");
  if (batch < 1) return fail(KASF_BAD_INPUT, "kasf_infer: batch " + std::to_string(batch) + " must be at least 1");
  return guarded([&] { runtime->stream->backend().infer(keypoints, batch, poses); });
}

int kasf_n_frames(const kasf_runtime* runtime) { return runtime == nullptr ? 0 : runtime->stream->n_frames(); }

int kasf_max_batch(const kasf_runtime* runtime) { return runtime == nullptr ? 0 : runtime->stream->backend().max_batch(); }

int kasf_num_tracks(const kasf_runtime* runtime) { return runtime == nullptr ? 0 : runtime->stream->num_tracks(); }

const char* kasf_backend_name(const kasf_runtime* runtime) {
  return runtime == nullptr ? "" : runtime->backend_name.c_str();
}

const char* kasf_engine_notes(const kasf_runtime* runtime) { return runtime == nullptr ? "" : runtime->notes.c_str(); }

const char* kasf_last_error(void) { return last_error.c_str(); }

const char* kasf_status_name(kasf_status status) {
  switch (status) {
    case KASF_OK: return "KASF_OK";
    case KASF_INVALID_ARGUMENT: return "KASF_INVALID_ARGUMENT";
    case KASF_BAD_INPUT: return "KASF_BAD_INPUT";
    case KASF_UNKNOWN_TRACK: return "KASF_UNKNOWN_TRACK";
    case KASF_CLOSED_TRACK: return "KASF_CLOSED_TRACK";
    case KASF_NOT_READY: return "KASF_NOT_READY";
    case KASF_ENGINE_FILE: return "KASF_ENGINE_FILE";
    case KASF_BACKEND_ERROR: return "KASF_BACKEND_ERROR";
    case KASF_UNSUPPORTED: return "KASF_UNSUPPORTED";
  }
  return "unknown kasf_status";
}

const char* kasf_joint_name(int joint) {
  const char* name = kasf::joint_name(joint);
  return name == nullptr ? "" : name;
}

const char* kasf_version(void) { return KASF_VERSION; }

const char* kasf_available_backends(void) {
  static const std::string names = [] {
    std::string joined;
    for (const std::string& name : kasf::available_backends()) joined += (joined.empty() ? "" : ",") + name;
    return joined;
  }();
  return names.c_str();
}

}  // extern "C"
