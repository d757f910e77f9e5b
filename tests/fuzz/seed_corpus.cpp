// Writes the fuzz seed corpus (tests/fuzz/corpus/<target>/) from the project's test
// vectors: tests/vectors/keyhold/format_v1.json (objects, headers, contexts, the invalid
// cases assembled from their segments), the Wycheproof chunked-encryption ciphertexts as
// payloads behind a valid header, freshly made keystores with cheap KDF parameters and
// an audit log under the fuzz targets' fixed keys. Run by scripts/fuzz-seed.
//   keyhold_fuzz_seed SOURCE_DIR OUT_DIR
#include <sys/stat.h>
#include <zlib.h>

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "keyhold/crypto/encoding.h"
#include "keyhold/crypto/envelope.h"
#include "keyhold/keystore/audit_log.h"
#include "keyhold/keystore/keystore.h"

namespace {

using namespace keyhold;
using nlohmann::json;
namespace fs = std::filesystem;

// Seeds larger than this are skipped: big inputs slow every execution down and add little.
constexpr size_t kMaxSeedSize = 24 * 1024;
constexpr char kAlice[] =
    "KH-SECRET-KEY-1SPP2KTE06PLZWRZ9FZYV00G26JEKYL00424DEU5RF4EN7UJK4TNSM74LJX";
constexpr char kBobRecipient[] = "kh1l2ynxp33r435dadc5jrnhnezj84apuphns903r0kzer9yhj769eqs7sldl";
constexpr char kPassphrase[] = "fuzz passphrase";

[[noreturn]] void Die(const std::string& why) {
  std::fprintf(stderr, "keyhold_fuzz_seed: %s\n", why.c_str());
  std::exit(1);
}

template <typename T>
T Must(Result<T> r, const char* what) {
  if (!r.ok()) Die(std::string(what) + ": " + r.error().message);
  return std::move(r).value();
}
void Must(Status s, const char* what) {
  if (!s.ok()) Die(std::string(what) + ": " + s.error().message);
}

std::vector<uint8_t> Hex(const std::string& text) { return Must(HexDecode(text), "hex"); }

std::string ReadText(const fs::path& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) Die("cannot read " + path.string());
  return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}

size_t g_written = 0;

void Put(const fs::path& dir, const std::string& name, const std::vector<uint8_t>& bytes) {
  if (bytes.size() > kMaxSeedSize) return;
  fs::create_directories(dir);
  std::ofstream out(dir / name, std::ios::binary | std::ios::trunc);
  out.write(reinterpret_cast<const char*>(bytes.data()),
            static_cast<std::streamsize>(bytes.size()));
  if (!out) Die("cannot write " + (dir / name).string());
  ++g_written;
}

// The vectors store ciphertexts zlib-compressed. Empty if it inflates beyond kMaxSeedSize
// (such a seed would be skipped anyway).
std::vector<uint8_t> Inflate(const std::vector<uint8_t>& in) {
  std::vector<uint8_t> out(kMaxSeedSize);
  uLongf n = static_cast<uLongf>(out.size());
  int rc = uncompress(out.data(), &n, in.data(), static_cast<uLong>(in.size()));
  if (rc == Z_BUF_ERROR) return {};
  if (rc != Z_OK) Die("zlib");
  out.resize(n);
  return out;
}

void FormatSeeds(const fs::path& src, const fs::path& out) {
  json j = json::parse(ReadText(src / "tests/vectors/keyhold/format_v1.json"));
  std::map<std::string, std::vector<uint8_t>> files;
  std::vector<uint8_t> first_header;
  for (const auto& v : j.at("valid")) {
    const std::string name = v.at("name").get<std::string>();
    std::vector<uint8_t> file;
    size_t header_size = v.at("header_size").get<size_t>();
    if (v.at("detached").get<bool>()) {
      file = Hex(v.at("header_hex").get<std::string>());
      auto payload = Hex(v.at("payload_hex").get<std::string>());
      file.insert(file.end(), payload.begin(), payload.end());
    } else {
      file = Hex(v.at("file_hex").get<std::string>());
    }
    files[name] = file;
    std::vector<uint8_t> header(file.begin(), file.begin() + static_cast<long>(header_size));
    if (first_header.empty()) first_header = header;
    Put(out / "header", "valid-" + name, header);
    Put(out / "decrypt", "valid-" + name, file);
    size_t unused = 0;
    auto parsed = Must(envelope::ParseHeader(header, &unused), "vector header");
    Put(out / "context", "valid-" + name, Must(envelope::EncodeContext(parsed.context), "ctx"));
  }
  Put(out / "context", "empty", Must(envelope::EncodeContext({}), "empty context"));

  for (const auto& v : j.at("invalid")) {
    if (!v.contains("file")) continue;
    std::vector<uint8_t> file;
    for (const auto& seg : v.at("file")) {
      if (seg.contains("hex")) {
        auto bytes = Hex(seg.at("hex").get<std::string>());
        size_t repeat = seg.value("repeat", size_t{1});
        for (size_t i = 0; i < repeat; ++i) file.insert(file.end(), bytes.begin(), bytes.end());
      } else {
        const auto& from = files.at(seg.at("from").get<std::string>());
        size_t off = seg.at("offset").get<size_t>();
        size_t len = seg.at("length").get<size_t>();
        if (off + len > from.size()) Die("bad segment");
        file.insert(file.end(), from.begin() + static_cast<long>(off),
                    from.begin() + static_cast<long>(off + len));
      }
    }
    const std::string name = "invalid-" + v.at("name").get<std::string>();
    Put(out / "decrypt", name, file);
    if (v.at("error").get<std::string>() == "malformed" ||
        v.at("error").get<std::string>() == "unsupported") {
      std::vector<uint8_t> head(
          file.begin(), file.begin() + static_cast<long>(std::min<size_t>(file.size(), 4096)));
      Put(out / "header", name, head);
    }
  }

  // Wycheproof chunked-encryption ciphertexts behind a valid header: structurally valid
  // chunk sequences of many shapes (empty, one partial, several full chunks, truncations).
  json w = json::parse(
      ReadText(src / "tests/vectors/wycheproof/c2sp_chunked_encryption_aes_256_gcm_test.json"));
  for (const auto& group : w.at("testGroups")) {
    for (const auto& t : group.at("tests")) {
      auto ct = Inflate(Hex(t.at("ct").get<std::string>()));
      if (ct.empty()) continue;
      std::vector<uint8_t> file = first_header;
      file.insert(file.end(), ct.begin(), ct.end());
      Put(out / "decrypt", "wycheproof-" + std::to_string(t.at("tcId").get<int>()), file);
    }
  }
}

std::string TempDir() {
  std::string tmpl = (fs::temp_directory_path() / "kh-fuzz-seed-XXXXXX").string();
  if (mkdtemp(tmpl.data()) == nullptr) Die("mkdtemp");
  return tmpl;
}

std::vector<uint8_t> ReadBytes(const fs::path& p) {
  std::string s = ReadText(p);
  return {s.begin(), s.end()};
}

void KeystoreSeeds(const fs::path& out) {
  const Argon2idParams cheap{1, kArgon2idMinMemoryKib, 1};
  SecretBytes pass(std::strlen(kPassphrase));
  std::memcpy(pass.ExposeSecret().data(), kPassphrase, pass.size());
  auto alice = Must(envelope::ParseIdentity(kAlice), "identity");

  std::string dir = TempDir() + "/ks";
  keystore::InitOptions init;
  init.kdf = cheap;
  Must(keystore::Keystore::Init(dir, pass, init), "init");
  Put(out / "keystore", "init-passphrase", ReadBytes(fs::path(dir) / "keystore.json"));

  keystore::Unlocker unlocker;
  unlocker.passphrase = SecretBytes(pass.size());
  std::memcpy(unlocker.passphrase->ExposeSecret().data(), kPassphrase, pass.size());
  auto ks = Must(keystore::Keystore::Open(dir, unlocker), "open");
  Must(ks.AddRecipientSlot(alice.public_key), "recipient slot");
  Put(out / "keystore", "passphrase-and-recipient", ReadBytes(fs::path(dir) / "keystore.json"));
  Must(ks.CreateKey("payroll", {90, 1}), "create");
  Must(ks.CreateKey("backups.2026", {}), "create");
  Must(ks.RotateKey("payroll"), "rotate");
  Must(ks.RotateKey("payroll"), "rotate");
  Must(ks.RetireVersion("payroll", 1), "retire");
  Must(ks.DisableVersion("payroll", 2), "disable");
  Must(ks.DestroyVersion("backups.2026", 1, true), "destroy");
  Must(ks.AddRecipient("bob", Must(envelope::ParseRecipient(kBobRecipient), "bob")), "add bob");
  Must(ks.SetDefaultKey("payroll"), "default");
  Put(out / "keystore", "full", ReadBytes(fs::path(dir) / "keystore.json"));
  Must(ks.AddPassphraseSlot(pass, Argon2idParams{2, kArgon2idMinMemoryKib, 1}), "second slot");
  Put(out / "keystore", "two-passphrase-slots", ReadBytes(fs::path(dir) / "keystore.json"));
  fs::remove_all(fs::path(dir).parent_path());
}

void AuditSeeds(const fs::path& out) {
  std::string dir = TempDir();
  SecretBytes key(keystore::kAuditMacKeySize);
  for (size_t i = 0; i < key.size(); ++i) key.ExposeSecret()[i] = static_cast<uint8_t>(1 + i);
  auto log = Must(keystore::AuditLog::Open(dir, std::move(key), 0), "audit open");
  auto change = [](std::string event, uint64_t generation,
                   std::vector<std::pair<std::string, std::string>> fields) {
    return keystore::AuditEvent{std::move(event), std::move(fields), generation, 1790000000};
  };
  Must(log->Record(change("keystore.init", 1, {{"slot", "s1"}})), "record");
  Must(log->Record(change("key.create", 2, {{"key", "backups"}})), "record");
  Must(log->RecordKeyUse("encrypt", {"backups v1"}, "obj-0"), "use");
  Must(log->RecordKeyUse("decrypt", {"backups v1", "payroll v2"}, "a \"quoted\"\tpath"), "use");
  Must(log->Record(change("key.rotate", 3, {{"key", "backups"}, {"version", "2"}})), "record");
  Must(log->Flush(), "flush");
  auto log_bytes = ReadBytes(fs::path(dir) / "audit.log");
  auto head_bytes = ReadBytes(fs::path(dir) / "audit.head");
  Put(out / "audit", "log-only", log_bytes);
  std::vector<uint8_t> with_head = log_bytes;
  with_head.push_back(0);
  with_head.insert(with_head.end(), head_bytes.begin(), head_bytes.end());
  Put(out / "audit", "log-and-head", with_head);
  log.reset();
  fs::remove_all(dir);
}

}  // namespace

int main(int argc, char** argv) {
  if (argc != 3) Die("usage: keyhold_fuzz_seed SOURCE_DIR OUT_DIR");
  fs::path src = argv[1];
  fs::path out = argv[2];
  FormatSeeds(src, out);
  KeystoreSeeds(out);
  AuditSeeds(out);
  std::printf("wrote %zu seed files under %s\n", g_written, out.c_str());
  return 0;
}
