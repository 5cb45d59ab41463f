#include "stream.hpp"

#include <algorithm>
#include <cmath>
#include <limits>
#include <numeric>
#include <sstream>

namespace kasf {

namespace {

constexpr int kRoot = 0;
const char* const kJointNames[kNumJoints] = {
    "pelvis", "right_hip", "right_knee", "right_ankle", "left_hip", "left_knee", "left_ankle",
    "spine", "thorax", "neck", "head", "left_shoulder", "left_elbow", "left_wrist",
    "right_shoulder", "right_elbow", "right_wrist"};

std::string where(int64_t track_id, int64_t frame) {
  return "track " + std::to_string(track_id) + " at frame " + std::to_string(frame);
}

// As Python prints a float list: shortest round-trip digits, nan for NaN.
std::string joint_values(const float* joint) {
  std::ostringstream out;
  out.precision(9);
  out << "[" << joint[0] << ", " << joint[1] << ", " << joint[2] << "]";
  return out.str();
}

}  // namespace

const char* joint_name(int joint) { return joint >= 0 && joint < kNumJoints ? kJointNames[joint] : nullptr; }

void Track::push(const Joints& keypoints, int64_t runtime_frame) {
  std::array<bool, kNumJoints> visible{};
  int n_visible = 0;
  for (int j = 0; j < kNumJoints; ++j) {
    visible[j] = keypoints[j * 3 + 2] > 0.0f;
    n_visible += visible[j];
  }
  if (visible[kRoot]) {
    anchor_ = {keypoints[kRoot * 3], keypoints[kRoot * 3 + 1]};
  } else if (n_visible > 0) {
    std::array<float, 2> sum{};
    for (int j = 0; j < kNumJoints; ++j) {
      if (visible[j]) {
        sum[0] += keypoints[j * 3];
        sum[1] += keypoints[j * 3 + 1];
      }
    }
    anchor_ = {sum[0] / static_cast<float>(n_visible), sum[1] / static_cast<float>(n_visible)};
  }
  Joints filled = keypoints;
  for (int j = 0; j < kNumJoints; ++j) {
    if (visible[j]) {
      last_seen_[j * 2] = keypoints[j * 3];
      last_seen_[j * 2 + 1] = keypoints[j * 3 + 1];
      seen_[j] = true;
      continue;
    }
    const float* fallback = seen_[j] ? &last_seen_[j * 2] : anchor_.data();
    filled[j * 3] = fallback[0];
    filled[j * 3 + 1] = fallback[1];
    filled[j * 3 + 2] = 0.0f;
  }
  if (static_cast<int>(frames_.size()) == n_frames_) {
    frames_.pop_front();
    runtime_frames_.pop_front();
  }
  frames_.push_back(filled);
  runtime_frames_.push_back(runtime_frame);
  ++count;
  last_push = runtime_frame;
}

void Track::window(int64_t newest, float* out) const {
  for (int i = 0; i < n_frames_; ++i) {
    const int64_t wanted = std::clamp<int64_t>(newest - n_frames_ + 1 + i, 0, count - 1);
    const Joints& joints = frames_[wanted - first_kept()];
    std::copy(joints.begin(), joints.end(), out + static_cast<size_t>(i) * joints.size());
  }
}

StreamRuntime::StreamRuntime(std::unique_ptr<Backend> backend, const StreamOptions& options)
    : backend_(std::move(backend)), options_(options), n_frames_(backend_->n_frames()) {
  const bool pixels = options.image_width != 0.0f || options.image_height != 0.0f;
  if (pixels && !(options.image_width > 0.0f && options.image_height > 0.0f)) {
    throw Error(Status::InvalidArgument, "image size must be (width, height) in pixels, both positive, got " +
                                             std::to_string(options.image_width) + " x " +
                                             std::to_string(options.image_height) +
                                             " (both 0 for keypoints already normalised)");
  }
  if (options.close_after < 0) {
    throw Error(Status::InvalidArgument, "close_after must be a positive number of frames (0: never), got " +
                                             std::to_string(options.close_after));
  }
  if (options.lag < -1) {
    throw Error(Status::InvalidArgument, "lag must be at least 0 (-1: the mode's), got " + std::to_string(options.lag));
  }
  if (options.stride < 1) {
    throw Error(Status::InvalidArgument, "stride must be at least 1, got " + std::to_string(options.stride));
  }
  lag_ = options.lag >= 0 ? options.lag : (options.mode == Mode::Causal ? 0 : n_frames_ / 2);
  stride_ = options.stride;
  phase_step_ = phase_step(stride_);
  if (lag_ + stride_ > n_frames_) {
    const std::string n = std::to_string(n_frames_);
    throw Error(Status::InvalidArgument, "lag " + std::to_string(lag_) + " + stride " + std::to_string(stride_) +
                                             " = " + std::to_string(lag_ + stride_) +
                                             " is more than the engine's window of " + n +
                                             " frames: the poses a window returns must lie in it (lag + stride <= " +
                                             n + ")");
  }
}

int phase_step(int stride) {
  // kasf.stream.runtime.phase_step: of the steps coprime to stride, the one whose worst
  // m * (smallest gap between the first m ids' phases), m = 2..5, is largest; then the largest
  // sum of those; then the smallest step.
  if (stride == 1) return 1;
  int best = 0;
  std::pair<int, int> best_spread{-1, -1};
  for (int step = 1; step <= stride; ++step) {
    if (std::gcd(step, stride) != 1) continue;
    int worst = std::numeric_limits<int>::max(), sum = 0;
    for (int m = 2; m <= std::min(stride, 5); ++m) {
      std::vector<int> phases;
      for (int i = 0; i < m; ++i) phases.push_back(i * step % stride);
      std::sort(phases.begin(), phases.end());
      int gap = phases.front() + stride - phases.back();
      for (int i = 1; i < m; ++i) gap = std::min(gap, phases[i] - phases[i - 1]);
      worst = std::min(worst, m * gap);
      sum += m * gap;
    }
    if (std::make_pair(worst, sum) > best_spread) {
      best_spread = {worst, sum};
      best = step;
    }
  }
  return best;
}

bool StreamRuntime::due(const Track& track, int64_t newest) const {
  return newest >= lag_ && (newest + 1 - lag_ + track.phase) % stride_ == 0;
}

StreamRuntime::Request StreamRuntime::request(int64_t track_id, const std::shared_ptr<Track>& track,
                                              int64_t newest) const {
  const int64_t last = std::min(newest - lag_, track->count - 1);
  Request made{track_id, track, newest, track->emitted, last,
               options_.blend ? std::min(newest, track->count - 1) : last};
  track->emitted = made.last + 1;
  return made;
}

Joints StreamRuntime::check(int64_t track_id, const float* keypoints, int num_joints) const {
  const std::string at = where(track_id, frame_);
  if (auto closed = closed_.find(track_id); closed != closed_.end()) {
    throw Error(Status::ClosedTrack, at + ": the track was closed at frame " + std::to_string(closed->second) +
                                         "; a closed track cannot be reopened, give the person a new track id");
  }
  if (keypoints == nullptr) throw Error(Status::InvalidArgument, at + ": keypoints is a null pointer");
  if (num_joints != kNumJoints) {
    throw Error(Status::BadInput, at + ": keypoints must have shape [17, 3] (Human3.6M joints; x, y, confidence), "
                                       "got [" + std::to_string(num_joints) +
                                       ", 3]; convert a detector's layout with kasf.keypoints.to_h36m(keypoints, layout)");
  }
  for (const auto& [id, staged] : staged_) {
    if (id == track_id) throw Error(Status::BadInput, at + ": the track already has keypoints in this frame");
  }
  // The Python runtime's checks, in its order: the first joint failing the first check is named.
  using Problem = std::pair<bool (*)(const float*), const char*>;
  static const Problem problems[] = {
      {[](const float* k) { return std::isinf(k[0]) || std::isinf(k[1]); }, "has an infinite coordinate"},
      {[](const float* k) { return std::isnan(k[2]); }, "has a NaN confidence"},
      {[](const float* k) { return k[2] < 0.0f || k[2] > 1.0f; }, "has a confidence outside [0, 1]"},
      {[](const float* k) { return (std::isnan(k[0]) || std::isnan(k[1])) && k[2] > 0.0f; },
       "has NaN coordinates but confidence above 0 (mark a missing joint with confidence 0)"},
  };
  for (const auto& [bad, problem] : problems) {
    for (int j = 0; j < kNumJoints; ++j) {
      if (bad(keypoints + j * 3)) {
        throw Error(Status::BadInput, at + ": joint " + std::to_string(j) + " (" + kJointNames[j] + ") " + problem +
                                          ": " + joint_values(keypoints + j * 3));
      }
    }
  }
  Joints checked;
  std::copy(keypoints, keypoints + checked.size(), checked.begin());
  if (options_.image_width > 0.0f) {
    const float width = options_.image_width, height = options_.image_height;
    for (int j = 0; j < kNumJoints; ++j) {
      checked[j * 3] = checked[j * 3] / width * 2.0f - 1.0f;
      checked[j * 3 + 1] = checked[j * 3 + 1] / width * 2.0f - height / width;
    }
  }
  return checked;
}

void StreamRuntime::push(int64_t track_id, const float* keypoints, int num_joints) {
  staged_.emplace_back(track_id, check(track_id, keypoints, num_joints));
}

const std::vector<PoseResult>& StreamRuntime::process() {
  std::vector<Request> requests = close_idle();
  for (const auto& [track_id, keypoints] : staged_) {
    auto [entry, opened] = tracks_.try_emplace(track_id, nullptr);
    if (opened) {
      // The track's phase (kasf.stream.runtime.track_phase): its id modulo stride, never negative
      // (Python's int % stride), times the phase step, modulo stride.
      const int64_t id_phase = ((track_id % stride_) + stride_) % stride_;
      const int phase = static_cast<int>(id_phase * phase_step_ % stride_);
      entry->second = std::make_shared<Track>(n_frames_, phase);
      order_.push_back(track_id);
    }
    Track& track = *entry->second;
    track.push(keypoints, frame_);
    if (due(track, track.count - 1)) requests.push_back(request(track_id, entry->second, track.count - 1));
  }
  staged_.clear();
  ++frame_;
  return lift(requests);
}

const std::vector<PoseResult>& StreamRuntime::close(int64_t track_id) {
  if (tracks_.find(track_id) == tracks_.end()) {
    const bool closed = closed_.count(track_id) > 0;
    throw Error(closed ? Status::ClosedTrack : Status::UnknownTrack,
                "cannot close track " + std::to_string(track_id) + ": it " +
                    (closed ? "was already closed" : "was never opened"));
  }
  return lift(end(track_id));
}

const std::vector<PoseResult>& StreamRuntime::close_all() {
  std::vector<Request> requests;
  for (int64_t track_id : std::vector<int64_t>(order_)) {
    for (Request& request : end(track_id)) requests.push_back(std::move(request));
  }
  return lift(requests);
}

std::vector<StreamRuntime::Request> StreamRuntime::end(int64_t track_id) {
  auto entry = tracks_.find(track_id);
  std::shared_ptr<Track> track = entry->second;
  tracks_.erase(entry);
  order_.erase(std::find(order_.begin(), order_.end(), track_id));
  closed_[track_id] = frame_;
  // The windows past the track's end (its last frame repeated) that return its pending frames; a
  // window ending at count - 1 was due in process() already.
  std::vector<Request> requests;
  for (int64_t newest = std::max<int64_t>(track->count, lag_); track->emitted < track->count; ++newest) {
    if (due(*track, newest)) requests.push_back(request(track_id, track, newest));
  }
  return requests;
}

std::vector<StreamRuntime::Request> StreamRuntime::close_idle() {
  std::vector<Request> requests;
  if (options_.close_after == 0) return requests;
  std::vector<int64_t> idle;
  for (int64_t track_id : order_) {
    const bool pushed = std::any_of(staged_.begin(), staged_.end(), [&](const auto& s) { return s.first == track_id; });
    if (!pushed && frame_ - tracks_.at(track_id)->last_push >= options_.close_after) idle.push_back(track_id);
  }
  for (int64_t track_id : idle) {
    for (Request& request : end(track_id)) requests.push_back(std::move(request));
  }
  return requests;
}

void StreamRuntime::add_to_blend(Track& track, int64_t frame, const float* pose) {
  auto entry = track.blend_sums.try_emplace(frame, Joints{}, 0).first;
  for (size_t k = 0; k < entry->second.first.size(); ++k) entry->second.first[k] += pose[k];
  ++entry->second.second;
}

const std::vector<PoseResult>& StreamRuntime::lift(const std::vector<Request>& requests) {
  results_.clear();
  const size_t window_size = static_cast<size_t>(n_frames_) * kNumJoints * kChannels;
  const size_t chunk = static_cast<size_t>(std::max(1, backend_->max_batch()));
  // More tracks than the engine's largest batch go through in several calls.
  for (size_t start = 0; start < requests.size(); start += chunk) {
    const size_t batch = std::min(chunk, requests.size() - start);
    windows_.resize(batch * window_size);
    poses_.resize(batch * window_size);
    for (size_t i = 0; i < batch; ++i) {
      const Request& request = requests[start + i];
      request.track->window(request.newest, windows_.data() + i * window_size);
    }
    backend_->infer(windows_.data(), static_cast<int64_t>(batch), poses_.data());
    windows_run_ += static_cast<int64_t>(batch);
    for (size_t i = 0; i < batch; ++i) {
      const Request& request = requests[start + i];
      auto pose_of = [&](int64_t frame) {
        const size_t position = static_cast<size_t>(frame - request.newest + n_frames_ - 1);
        return poses_.data() + i * window_size + position * kNumJoints * kChannels;
      };
      for (int64_t frame = request.last + 1; frame <= request.held; ++frame) {
        add_to_blend(*request.track, frame, pose_of(frame));
      }
      for (int64_t frame = request.first; frame <= request.last; ++frame) {
        PoseResult result{request.track_id, request.track->runtime_frame(frame), frame, {}};
        const float* pose = pose_of(frame);
        if (options_.blend) {
          // The frame's mean over the windows that held it, this one the last (the Python runtime's Blend).
          add_to_blend(*request.track, frame, pose);
          auto entry = request.track->blend_sums.find(frame);
          const float count = static_cast<float>(entry->second.second);
          for (size_t k = 0; k < result.pose.size(); ++k) result.pose[k] = entry->second.first[k] / count;
          request.track->blend_sums.erase(entry);
        } else {
          std::copy(pose, pose + result.pose.size(), result.pose.begin());
        }
        results_.push_back(result);
      }
    }
  }
  return results_;
}

}  // namespace kasf
