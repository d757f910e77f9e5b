// Sources, sinks and helpers shared by the Cobblestone tests.
#ifndef KEYHOLD_TESTS_UNIT_COBBLESTONE_TEST_UTIL_H_
#define KEYHOLD_TESTS_UNIT_COBBLESTONE_TEST_UTIL_H_

#include <unistd.h>

#include <algorithm>
#include <catch2/catch.hpp>
#include <cstdint>
#include <cstdlib>
#include <random>
#include <span>
#include <stdexcept>
#include <string>
#include <vector>

#include "keyhold/crypto/cobblestone.h"
#include "keyhold/crypto/encoding.h"
#include "keyhold/crypto/file_io.h"
#include "keyhold/crypto/hash.h"
#include "keyhold/crypto/result.h"

namespace cobtest {

using Bytes = std::vector<uint8_t>;

// Yields `data`; with max_read set, returns at most that many bytes per call, which breaks
// the Source contract on purpose to check that the engine does not rely on it.
class MemorySource final : public keyhold::cobblestone::Source {
 public:
  explicit MemorySource(std::span<const uint8_t> data, size_t max_read = 0)
      : data_(data), max_read_(max_read) {}
  keyhold::Result<size_t> Read(std::span<uint8_t> out) override {
    size_t n = std::min(out.size(), data_.size() - pos_);
    if (max_read_ != 0) n = std::min(n, max_read_);
    std::copy_n(data_.begin() + static_cast<std::ptrdiff_t>(pos_), n, out.begin());
    pos_ += n;
    return n;
  }
  size_t consumed() const { return pos_; }

 private:
  std::span<const uint8_t> data_;
  size_t max_read_;
  size_t pos_ = 0;
};

// A MemorySource that accepts StartPositional, as a regular file does; ReadAt from
// `fail_at` on (an offset from where the Reads stopped) returns an I/O error, or throws if
// `throw_instead`.
class PositionalMemorySource final : public keyhold::cobblestone::Source {
 public:
  explicit PositionalMemorySource(std::span<const uint8_t> data, uint64_t fail_at = UINT64_MAX,
                                  bool throw_instead = false)
      : data_(data), fail_at_(fail_at), throw_(throw_instead) {}
  keyhold::Result<size_t> Read(std::span<uint8_t> out) override {
    const size_t n = std::min(out.size(), data_.size() - pos_);
    std::copy_n(data_.begin() + static_cast<std::ptrdiff_t>(pos_), n, out.begin());
    pos_ += n;
    return n;
  }
  bool StartPositional() override {
    started = true;
    return true;
  }
  keyhold::Result<size_t> ReadAt(uint64_t offset, std::span<uint8_t> out) override {
    if (offset >= fail_at_) {
      if (throw_) throw std::runtime_error("ReadAt: test");
      return keyhold::Error(keyhold::ErrorCode::kIo, "read failed: test");
    }
    if (offset >= data_.size() - pos_) return size_t{0};
    const size_t at = pos_ + static_cast<size_t>(offset);
    const size_t n = std::min(out.size(), data_.size() - at);
    std::copy_n(data_.begin() + static_cast<std::ptrdiff_t>(at), n, out.begin());
    return n;
  }
  void EndPositional() override { ended = true; }
  bool started = false;
  bool ended = false;

 private:
  std::span<const uint8_t> data_;
  uint64_t fail_at_;
  bool throw_;
  size_t pos_ = 0;
};

// Fails every Read after `ok_bytes` have been delivered.
class FailingSource final : public keyhold::cobblestone::Source {
 public:
  FailingSource(std::span<const uint8_t> data, size_t ok_bytes) : inner_(data), left_(ok_bytes) {}
  keyhold::Result<size_t> Read(std::span<uint8_t> out) override {
    if (left_ == 0) return keyhold::Error(keyhold::ErrorCode::kIo, "read failed: test");
    auto r = inner_.Read(out.first(std::min(out.size(), left_)));
    if (r.ok()) left_ -= *r;
    return r;
  }

 private:
  MemorySource inner_;
  size_t left_;
};

class VectorSink final : public keyhold::cobblestone::Sink {
 public:
  keyhold::Status Write(std::span<const uint8_t> data) override {
    ++writes;
    if (fail_after_writes >= 0 && writes > fail_after_writes) {
      return keyhold::Error(keyhold::ErrorCode::kIo, "write failed: test");
    }
    bytes.insert(bytes.end(), data.begin(), data.end());
    return {};
  }
  Bytes bytes;
  int writes = 0;
  int fail_after_writes = -1;  // -1: never fail
};

inline Bytes RandomBytesForTest(size_t n, uint32_t seed) {
  std::mt19937 rng(seed);
  Bytes out(n);
  for (auto& b : out) b = static_cast<uint8_t>(rng());
  return out;
}

inline keyhold::SecretBytes KeyFrom(std::span<const uint8_t> bytes) {
  return keyhold::SecretBytes::CopyOf(bytes);
}

// A temp file holding `data`, removed when destroyed.
class TempFile {
 public:
  explicit TempFile(std::span<const uint8_t> data) {
    char tmpl[] = "/tmp/kh-cob-test-XXXXXX";
    fd_ = mkstemp(tmpl);
    if (fd_ < 0) std::abort();
    path_ = tmpl;
    if (!keyhold::WriteAll(fd_, data).ok()) std::abort();
  }
  ~TempFile() {
    close(fd_);
    unlink(path_.c_str());
  }
  TempFile(const TempFile&) = delete;
  TempFile& operator=(const TempFile&) = delete;
  int fd() const { return fd_; }

 private:
  int fd_ = -1;
  std::string path_;
};

}  // namespace cobtest

// Payloads are megabytes: a failed comparison prints their size and a hash, not every byte
// (Catch's own formatting of a large vector takes minutes).
namespace Catch {
template <>
struct StringMaker<std::vector<uint8_t>> {
  static std::string convert(const std::vector<uint8_t>& v) {
    std::string sha = keyhold::HexEncode(keyhold::Sha512(v)).substr(0, 16);
    return "<" + std::to_string(v.size()) + " bytes, sha512 " + sha + "...>";
  }
};
}  // namespace Catch

#endif  // KEYHOLD_TESTS_UNIT_COBBLESTONE_TEST_UTIL_H_
