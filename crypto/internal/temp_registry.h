// The registry of live temp files that the signal handlers remove (file_io.cpp). Internal to
// the crypto module; the tests reach it to check what a handler can see during slot reuse.
#ifndef KEYHOLD_CRYPTO_INTERNAL_TEMP_REGISTRY_H_
#define KEYHOLD_CRYPTO_INTERNAL_TEMP_REGISTRY_H_

#include <string_view>

namespace keyhold::internal {

// 1024 covers the 768 temp files that encrypt -O keeps pending at most (cli/bulk.h).
inline constexpr unsigned kMaxTempFiles = 1024;

// Records `path` (shorter than PATH_MAX) and returns its slot, or -1 if the registry is full
// or the path too long; such a file is then removed by its owner only, not by a signal.
// Register a name before the file exists (the caller creates it with O_EXCL afterwards), so
// that no moment exists in which the file exists but a signal would leave it behind.
int RegisterTemp(std::string_view path);

// Frees `slot` (-1 is ignored). Call it after the file was renamed into place or unlinked.
void UnregisterTemp(int slot);

// The creation gate. A temp file is created between BeginTempCreation and EndTempCreation
// (register the name, then open it). A fatal signal's handler calls
// StopTempCreationForSignal before its scan: from then on a thread entering the gate waits
// for the process to end, and the handler waits (bounded) for threads inside the gate, so
// that no file is created after the scan has passed its slot. Async-signal-safe.
void BeginTempCreation();
void EndTempCreation();
void StopTempCreationForSignal();

// Calls fn(path, arg) for each registered path, with a copy that is never torn: a slot that
// was released or re-claimed while it was read is skipped (a sequence count in the slot's
// state, checked after the copy). Async-signal-safe: no allocation, no locks.
void ForEachRegisteredTemp(void (*fn)(const char* path, void* arg), void* arg);

}  // namespace keyhold::internal

#endif  // KEYHOLD_CRYPTO_INTERNAL_TEMP_REGISTRY_H_
