// C++ wrapper over the kasf C API: RAII handle, exceptions, std::vector results.
#pragma once

#include <array>
#include <stdexcept>
#include <string>
#include <vector>

#include "kasf/kasf.h"

namespace kasf {

// A failed C API call: its status and the library's message.
class RuntimeError : public std::runtime_error {
 public:
  RuntimeError(kasf_status status, const std::string& message)
      : std::runtime_error(std::string(kasf_status_name(status)) + ": " + message), status_(status) {}
  kasf_status status() const { return status_; }

 private:
  kasf_status status_;
};

inline void check(kasf_status status) {
  if (status != KASF_OK) throw RuntimeError(status, kasf_last_error());
}

using Keypoints = std::array<float, KASF_NUM_JOINTS * 3>;  // (x, y, confidence) per joint

class Runtime {
 public:
  explicit Runtime(const std::string& engine_path, const kasf_options& options = kasf_default_options()) {
    check(kasf_create(engine_path.c_str(), &options, &handle_));
  }
  ~Runtime() { kasf_destroy(handle_); }
  Runtime(const Runtime&) = delete;
  Runtime& operator=(const Runtime&) = delete;
  Runtime(Runtime&& other) noexcept : handle_(other.handle_) { other.handle_ = nullptr; }
  Runtime& operator=(Runtime&& other) noexcept {
    std::swap(handle_, other.handle_);
    return *this;
  }

  void push(int64_t track_id, const Keypoints& keypoints) {
    check(kasf_push(handle_, track_id, keypoints.data(), KASF_NUM_JOINTS));
  }
  // End the frame: the poses that became ready.
  std::vector<kasf_pose> process() { return collect(kasf_process(handle_, &count_)); }
  std::vector<kasf_pose> close(int64_t track_id) { return collect(kasf_close_track(handle_, track_id, &count_)); }
  std::vector<kasf_pose> close_all() { return collect(kasf_close_all(handle_, &count_)); }
  // poses.size() must equal keypoints.size() (batch * n_frames * 17 * 3 floats).
  void infer(const std::vector<float>& keypoints, std::vector<float>& poses) {
    const size_t clip = static_cast<size_t>(n_frames()) * KASF_NUM_JOINTS * 3;
    if (keypoints.size() % clip != 0 || poses.size() != keypoints.size()) {
      throw RuntimeError(KASF_INVALID_ARGUMENT, "infer: keypoints must be whole [n_frames, 17, 3] clips and poses "
                                                "as large");
    }
    check(kasf_infer(handle_, keypoints.data(), static_cast<int64_t>(keypoints.size() / clip), poses.data()));
  }

  int n_frames() const { return kasf_n_frames(handle_); }
  int max_batch() const { return kasf_max_batch(handle_); }
  int num_tracks() const { return kasf_num_tracks(handle_); }
  std::string backend() const { return kasf_backend_name(handle_); }
  std::string notes() const { return kasf_engine_notes(handle_); }
  kasf_runtime* handle() { return handle_; }

 private:
  std::vector<kasf_pose> collect(kasf_status status) {
    check(status);
    std::vector<kasf_pose> poses(static_cast<size_t>(count_));
    for (int i = 0; i < count_; ++i) check(kasf_get_result(handle_, i, &poses[i]));
    return poses;
  }

  kasf_runtime* handle_ = nullptr;
  int count_ = 0;
};

}  // namespace kasf
