// Writes the keyhold format v1 test vectors (tests/vectors/keyhold/format_v1.json) to stdout.
// Run through scripts/gen-vectors; the format tests fail if the checked-in file differs.
#include <exception>
#include <iostream>

#include "format_test_support.h"

int main() {
  try {
    std::cout << keyhold::format_test::GenerateFormatVectors().dump(1) << "\n";
  } catch (const std::exception& e) {
    std::cerr << "gen_format_vectors: " << e.what() << "\n";
    return 1;
  }
  return std::cout.good() ? 0 : 1;
}
