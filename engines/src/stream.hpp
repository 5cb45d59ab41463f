// The streaming window logic of kasf.stream.StreamRuntime, in C++: per-track sliding windows,
// lag and stride (staggered by track id), blending, start and end padding, missing-joint
// filling, one engine call per frame. Kept line for line
// with the Python runtime so the two give the same poses (tested to 1e-3 mm).
#pragma once

#include <array>
#include <cstdint>
#include <deque>
#include <memory>
#include <unordered_map>
#include <vector>

#include "backend.hpp"

namespace kasf {

using Joints = std::array<float, kNumJoints * kChannels>;

enum class Mode { Causal, Centred };

// The multiplier of integer track ids in their phase: coprime to stride (ids 0..stride-1 take
// every phase once), the one that spreads the first few ids most evenly over the stride.
int phase_step(int stride);

// Human3.6M joint names in kasf.keypoints.skeleton order; nullptr outside 0..16.
const char* joint_name(int joint);

struct StreamOptions {
  Mode mode = Mode::Causal;
  int lag = -1;               // frames the newest returned pose lies behind the newest keypoints; -1: the mode's
  int stride = 1;             // poses one window returns per track, every stride frames (lag + stride <= n_frames)
  float image_width = 0.0f;   // both 0: keypoints already normalised
  float image_height = 0.0f;
  int close_after = 0;        // 0: tracks close only when told
  bool blend = false;         // a returned pose is the mean of every window that held its frame
};

struct PoseResult {
  int64_t track_id;
  int64_t frame;
  int64_t track_frame;
  Joints pose;
};

class Track {
 public:
  Track(int n_frames, int phase) : phase(phase), n_frames_(n_frames) {}
  // keypoints: checked and normalised.
  void push(const Joints& keypoints, int64_t runtime_frame);
  // The window ending at track frame `newest`, padded by repeating the first and last frames,
  // written to out[n_frames * 51].
  void window(int64_t newest, float* out) const;
  int64_t runtime_frame(int64_t frame) const { return runtime_frames_[frame - first_kept()]; }

  const int phase;        // where the track's windows fall among the stride's frames
  int64_t count = 0;      // frames pushed so far
  int64_t emitted = 0;    // frames whose pose has been returned
  int64_t last_push = -1;
  // Blending: the sums of the poses windows gave for frames not yet returned, and how many.
  std::unordered_map<int64_t, std::pair<Joints, int>> blend_sums;

 private:
  int64_t first_kept() const { return count - static_cast<int64_t>(frames_.size()); }

  int n_frames_;
  std::deque<Joints> frames_;
  std::deque<int64_t> runtime_frames_;
  std::array<float, kNumJoints * 2> last_seen_{};
  std::array<bool, kNumJoints> seen_{};
  std::array<float, 2> anchor_{};   // where never-seen joints go
};

class StreamRuntime {
 public:
  StreamRuntime(std::unique_ptr<Backend> backend, const StreamOptions& options);

  // Check one track's keypoints and stage them for the next process().
  void push(int64_t track_id, const float* keypoints, int num_joints);
  // End the frame; the poses that became ready, valid until the next call.
  const std::vector<PoseResult>& process();
  const std::vector<PoseResult>& close(int64_t track_id);
  const std::vector<PoseResult>& close_all();
  const std::vector<PoseResult>& results() const { return results_; }

  Backend& backend() { return *backend_; }
  const Backend& backend() const { return *backend_; }
  int n_frames() const { return n_frames_; }
  int lag() const { return lag_; }
  int stride() const { return stride_; }
  int64_t windows() const { return windows_run_; }
  int num_tracks() const { return static_cast<int>(order_.size()); }

 private:
  // The window ending at track frame `newest`, returning the track's frames first..last; with
  // blending it also adds its poses of frames last+1..held to the track's sums.
  struct Request {
    int64_t track_id;
    std::shared_ptr<Track> track;
    int64_t newest;
    int64_t first;
    int64_t last;
    int64_t held;
  };

  Joints check(int64_t track_id, const float* keypoints, int num_joints) const;
  bool due(const Track& track, int64_t newest) const;
  Request request(int64_t track_id, const std::shared_ptr<Track>& track, int64_t newest) const;
  std::vector<Request> end(int64_t track_id);
  std::vector<Request> close_idle();
  const std::vector<PoseResult>& lift(const std::vector<Request>& requests);
  static void add_to_blend(Track& track, int64_t frame, const float* pose);

  std::unique_ptr<Backend> backend_;
  StreamOptions options_;
  int n_frames_;
  int lag_;
  int stride_;
  int phase_step_;
  int64_t windows_run_ = 0;
  int64_t frame_ = 0;
  std::unordered_map<int64_t, std::shared_ptr<Track>> tracks_;
  std::vector<int64_t> order_;                          // open track ids, oldest first
  std::unordered_map<int64_t, int64_t> closed_;         // track id -> runtime frame it was closed at
  std::vector<std::pair<int64_t, Joints>> staged_;      // this frame's pushes, in order
  std::vector<PoseResult> results_;
  std::vector<float> windows_, poses_;
};

}  // namespace kasf
