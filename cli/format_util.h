// Small formatting helpers for human and JSON output.
#ifndef KEYHOLD_CLI_FORMAT_UTIL_H_
#define KEYHOLD_CLI_FORMAT_UTIL_H_

#include <cstdint>
#include <string>

namespace keyhold::cli {

// RFC 3339 UTC, e.g. "2026-11-28T12:00:00Z"; "-" for 0.
std::string FormatTime(int64_t unix_seconds);
// "1.5 GiB"-style sizes for humans.
std::string FormatBytes(uint64_t bytes);

}  // namespace keyhold::cli

#endif  // KEYHOLD_CLI_FORMAT_UTIL_H_
