// kasf_bench: trtexec-style timing of an engine through the kasf C++ runtime (kasf_infer, whole
// windows, host buffers in and out), with the conventions of `kasf bench`: warm-up by time (at
// least one run), then at least N iterations and at least D seconds per batch size; latency
// min / mean / median / p90 / p95 / p99 / max (percentiles interpolated linearly, as numpy's),
// throughput in clips/s and frames/s, and a warning when the coefficient of variation is over 2.5%.
//
//   kasf_bench ENGINE [--batch 1 8 32] [--warmup MS] [--iterations N] [--duration S]
//              [--threads N] [--backend NAME] [--json FILE]
#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <iostream>
#include <numeric>
#include <random>
#include <string>
#include <vector>

#include "kasf/kasf.hpp"

namespace {

using Clock = std::chrono::steady_clock;
constexpr double kCvWarning = 0.025;

struct Settings {
  std::vector<int64_t> batches;
  double warmup_ms = 200.0;
  int iterations = 10;
  double duration_s = 3.0;
};

struct Stats {
  int64_t batch;
  size_t iterations;
  double min, mean, median, p90, p95, p99, max, cv;  // ms; cv a fraction
  double clips_per_s, frames_per_s;
};

[[noreturn]] void usage(const std::string& problem) {
  std::cerr << "kasf_bench: " << problem << "\n"
            << "usage: kasf_bench ENGINE [--batch N ...] [--warmup MS] [--iterations N] [--duration S]\n"
            << "                  [--threads N] [--backend NAME] [--json FILE]\n";
  std::exit(2);
}

// numpy.percentile's default (linear interpolation between closest ranks) of sorted values.
double percentile(const std::vector<double>& sorted, double q) {
  const double rank = q / 100.0 * static_cast<double>(sorted.size() - 1);
  const size_t below = static_cast<size_t>(std::floor(rank));
  const size_t above = std::min(below + 1, sorted.size() - 1);
  return sorted[below] + (sorted[above] - sorted[below]) * (rank - static_cast<double>(below));
}

Stats summarise(int64_t batch, int n_frames, std::vector<double> ms) {
  std::sort(ms.begin(), ms.end());
  const double mean = std::accumulate(ms.begin(), ms.end(), 0.0) / static_cast<double>(ms.size());
  double squares = 0.0;
  for (double value : ms) squares += (value - mean) * (value - mean);
  const double clips_per_s = static_cast<double>(batch) / (mean / 1e3);
  return {batch, ms.size(), ms.front(), mean, percentile(ms, 50), percentile(ms, 90), percentile(ms, 95),
          percentile(ms, 99), ms.back(), std::sqrt(squares / static_cast<double>(ms.size())) / mean,
          clips_per_s, clips_per_s * n_frames};
}

// Random windows in normalised units, all joints seen, as `kasf bench` feeds.
std::vector<float> keypoints(int64_t batch, int n_frames) {
  std::vector<float> values(static_cast<size_t>(batch) * n_frames * KASF_NUM_JOINTS * 3);
  std::mt19937 generator(0);
  std::uniform_real_distribution<float> uniform(-1.0f, 1.0f);
  for (size_t i = 0; i < values.size(); ++i) values[i] = i % 3 == 2 ? 1.0f : uniform(generator);
  return values;
}

Stats time_batch(kasf::Runtime& runtime, int64_t batch, const Settings& settings) {
  const std::vector<float> input = keypoints(batch, runtime.n_frames());
  std::vector<float> output(input.size());
  auto seconds_since = [](Clock::time_point start) {
    return std::chrono::duration<double>(Clock::now() - start).count();
  };
  const Clock::time_point warmup_start = Clock::now();
  do {
    runtime.infer(input, output);
  } while (seconds_since(warmup_start) * 1e3 < settings.warmup_ms);
  std::vector<double> ms;
  const Clock::time_point start = Clock::now();
  while (static_cast<int>(ms.size()) < settings.iterations || seconds_since(start) < settings.duration_s) {
    const Clock::time_point run = Clock::now();
    runtime.infer(input, output);
    ms.push_back(seconds_since(run) * 1e3);
  }
  return summarise(batch, runtime.n_frames(), ms);
}

void print_summary(const Stats& s) {
  std::printf("=== batch %lld: %zu iterations ===\n", static_cast<long long>(s.batch), s.iterations);
  std::printf("Throughput: %.2f clips/s (%.1f frames/s)\n", s.clips_per_s, s.frames_per_s);
  std::printf("Latency: min = %.3f ms, max = %.3f ms, mean = %.3f ms, median = %.3f ms, percentile(90%%) = %.3f ms, "
              "percentile(95%%) = %.3f ms, percentile(99%%) = %.3f ms\n",
              s.min, s.max, s.mean, s.median, s.p90, s.p95, s.p99);
  std::printf("Coefficient of variation: %.2f%%\n", 100.0 * s.cv);
  if (s.cv > kCvWarning) {
    std::printf("Warning: the coefficient of variation is over %.1f%%: the machine was not quiet (other load, "
                "frequency scaling); the figures may not be reproducible\n", 100.0 * kCvWarning);
  }
}

std::string json_string(const std::string& text) {
  std::string quoted = "\"";
  for (char c : text) {
    if (c == '"' || c == '\\') quoted += '\\';
    quoted += c;
  }
  return quoted + "\"";
}

void write_json(const std::string& path, const std::string& engine, kasf::Runtime& runtime, const Settings& settings,
                const std::vector<Stats>& runs) {
  std::ofstream out(path);
  if (!out) throw std::runtime_error("cannot write " + path);
  out.precision(9);
  out << "{\n  \"tool\": \"kasf_bench\",\n  \"kasf_version\": \"" << kasf_version() << "\",\n  \"engine\": "
      << json_string(engine) << ",\n  \"backend\": \"" << runtime.backend() << "\",\n  \"n_frames\": " << runtime.n_frames()
      << ",\n  \"settings\": {\"warmup_ms\": " << settings.warmup_ms << ", \"iterations\": " << settings.iterations
      << ", \"duration_s\": " << settings.duration_s << "},\n  \"runs\": [";
  for (size_t i = 0; i < runs.size(); ++i) {
    const Stats& s = runs[i];
    out << (i ? ",\n" : "\n") << "    {\"batch\": " << s.batch << ", \"clips_per_s\": " << s.clips_per_s
        << ", \"frames_per_s\": " << s.frames_per_s << ", \"latency\": {\"iterations\": " << s.iterations
        << ", \"min_ms\": " << s.min << ", \"mean_ms\": " << s.mean << ", \"median_ms\": " << s.median
        << ", \"p90_ms\": " << s.p90 << ", \"p95_ms\": " << s.p95 << ", \"p99_ms\": " << s.p99
        << ", \"max_ms\": " << s.max << ", \"cv\": " << s.cv << "}}";
  }
  out << "\n  ]\n}\n";
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 2 || argv[1][0] == '-') usage("ENGINE is required");
  Settings settings;
  kasf_options options = kasf_default_options();
  std::string backend, json;
  for (int i = 2; i < argc; ++i) {
    const std::string flag = argv[i];
    auto value = [&]() -> std::string {
      if (i + 1 >= argc) usage(flag + " needs a value");
      return argv[++i];
    };
    try {
      if (flag == "--batch") {
        while (i + 1 < argc && argv[i + 1][0] != '-') settings.batches.push_back(std::stoll(argv[++i]));
        if (settings.batches.empty()) usage("--batch needs at least one size");
      } else if (flag == "--warmup") {
        settings.warmup_ms = std::stod(value());
      } else if (flag == "--iterations") {
        settings.iterations = std::stoi(value());
      } else if (flag == "--duration") {
        settings.duration_s = std::stod(value());
      } else if (flag == "--threads") {
        options.threads = std::stoi(value());
      } else if (flag == "--backend") {
        backend = value();
        options.backend = backend.c_str();
      } else if (flag == "--json") {
        json = value();
      } else {
        usage("unknown option " + flag);
      }
    } catch (const std::logic_error&) {
      usage(flag + " needs a number");
    }
  }
  if (settings.batches.empty()) settings.batches = {1};
  if (settings.iterations < 1 || settings.warmup_ms < 0 || settings.duration_s < 0 ||
      *std::min_element(settings.batches.begin(), settings.batches.end()) < 1) {
    usage("batch sizes and --iterations must be at least 1; --warmup and --duration not negative");
  }
  try {
    kasf::Runtime runtime(argv[1], options);
    std::printf("kasf_bench %s: %s (%s backend, %d frames per clip)\n", kasf_version(), argv[1],
                runtime.backend().c_str(), runtime.n_frames());
    if (!runtime.notes().empty()) std::printf("note: %s\n", runtime.notes().c_str());
    std::vector<Stats> runs;
    for (int64_t batch : settings.batches) {
      runs.push_back(time_batch(runtime, batch, settings));
      print_summary(runs.back());
    }
    if (!json.empty()) {
      write_json(json, argv[1], runtime, settings, runs);
      std::printf("wrote %s\n", json.c_str());
    }
  } catch (const std::exception& err) {
    std::cerr << "kasf_bench: " << err.what() << "\n";
    return 1;
  }
  return 0;
}
