// Versions of the libraries keyhold_crypto runs with (for `keyhold --version`).
#ifndef KEYHOLD_CRYPTO_VERSION_H_
#define KEYHOLD_CRYPTO_VERSION_H_

#include <string>

namespace keyhold {

std::string OpenSslRuntimeVersion();  // e.g. "OpenSSL 3.0.17 1 Jul 2025"
std::string SodiumRuntimeVersion();   // e.g. "1.0.18"
// True if OpenSSL reports AES-NI (or VAES) support on this CPU.
bool HardwareAesAvailable();

}  // namespace keyhold

#endif  // KEYHOLD_CRYPTO_VERSION_H_
