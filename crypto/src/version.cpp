#include "keyhold/crypto/version.h"

#include <openssl/crypto.h>
#include <sodium.h>

#include <cstdint>
#include <cstdlib>

#if defined(__x86_64__)
#include <cpuid.h>
#endif

namespace keyhold {

std::string OpenSslRuntimeVersion() { return OpenSSL_version(OPENSSL_VERSION); }

std::string SodiumRuntimeVersion() { return sodium_version_string(); }

bool HardwareAesAvailable() {
  // OpenSSL picks its AES-NI code path from CPUID leaf 1, ECX bit 25, unless the
  // OPENSSL_ia32cap environment variable masks it; report the same thing.
#if defined(__x86_64__)
  if (std::getenv("OPENSSL_ia32cap") != nullptr) return false;  // overridden: cannot tell
  unsigned int eax = 0, ebx = 0, ecx = 0, edx = 0;
  if (__get_cpuid(1, &eax, &ebx, &ecx, &edx) == 0) return false;
  return (ecx & (1u << 25)) != 0;
#else
  return false;
#endif
}

}  // namespace keyhold
