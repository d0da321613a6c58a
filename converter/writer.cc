#include "writer.h"

#include <dirent.h>
#include <fcntl.h>
#include <openssl/evp.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <iomanip>
#include <map>
#include <sstream>

#include "core/dtype_fb.h"
#include "core/format.h"
#include "hf_model.h"
#include "tokenizer_json.h"
#include "util.h"

#ifndef EMBER_VERSION_STRING
#define EMBER_VERSION_STRING "unknown"
#endif

namespace ember {
namespace convert {
namespace {

bool path_exists(const std::string& p) {
  struct stat st;
  return ::lstat(p.c_str(), &st) == 0;
}

// A bar on one line of `os`, redrawn with '\r'; at most ~40 redraws per phase.
class Progress {
 public:
  Progress(std::ostream* os, bool tty, const char* phase, size_t total)
      : os_(os), tty_(tty), phase_(phase), total_(total) {}
  void update(size_t done) {
    if (!os_ || total_ == 0) return;
    if (!tty_) {  // a log file gets one line per phase, not 40 carriage returns
      if (done == total_)
        *os_ << phase_ << " " << done << "/" << total_ << " tensors\n" << std::flush;
      return;
    }
    const size_t step = done * 40 / total_;
    if (done != total_ && step == last_) return;
    last_ = step;
    *os_ << "\r" << std::left << std::setw(11) << phase_ << " [" << std::string(step, '#')
         << std::string(40 - step, '.') << "] " << done << "/" << total_ << std::flush;
    if (done == total_) *os_ << "\n";
  }

 private:
  std::ostream* os_;
  bool tty_;
  const char* phase_;
  size_t total_;
  size_t last_ = static_cast<size_t>(-1);
};

// The directory part of `path` ("." for a bare name) and the rest.
std::string dir_of(const std::string& path) {
  const size_t slash = path.rfind('/');
  if (slash == std::string::npos) return ".";
  return slash == 0 ? "/" : path.substr(0, slash);
}
std::string base_of(const std::string& path) {
  const size_t slash = path.rfind('/');
  return slash == std::string::npos ? path : path.substr(slash + 1);
}

// Makes a rename in `dir` durable: without it a power loss can bring back the old directory entry.
void fsync_dir(const std::string& dir, const std::string& out) {
  const int fd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0) throw ConvertError(dir + ": cannot open the directory: " + std::strerror(errno));
  // Some filesystems cannot sync a directory (EINVAL); there the rename is as durable as it gets.
  const bool failed = ::fsync(fd) != 0 && errno != EINVAL;
  const int err = errno;
  ::close(fd);
  if (failed) {
    throw ConvertError(out + ": written, but syncing its directory failed: " + std::strerror(err));
  }
}

// The temporary output: removed unless committed. It holds an exclusive flock while open, so that
// remove_stale_temporaries() can tell a live writer's temporary from a killed one's.
class TempFile {
 public:
  explicit TempFile(const std::string& out) : out_(out) {
    path_ = out + kTempInfix + "XXXXXX";
    std::vector<char> tmpl(path_.begin(), path_.end());
    tmpl.push_back('\0');
    fd_ = ::mkostemp(tmpl.data(), O_CLOEXEC);
    if (fd_ < 0)
      throw ConvertError(out +
                         ": cannot create a temporary file beside it: " + std::strerror(errno));
    path_ = tmpl.data();
    (void)::flock(fd_, LOCK_EX | LOCK_NB);  // a new file: nobody else holds it
    const mode_t mask = ::umask(0);
    ::umask(mask);
    ::fchmod(fd_, 0666 & ~mask);
  }
  ~TempFile() {
    if (!committed_) ::unlink(path_.c_str());
    if (fd_ >= 0) ::close(fd_);
  }
  void write(const void* p, size_t n) {
    const char* c = static_cast<const char*>(p);
    while (n > 0) {
      const ssize_t w = ::write(fd_, c, n);
      if (w < 0 && errno == EINTR) continue;
      if (w <= 0) fail("write failed", w == 0 ? ENOSPC : errno);
      c += w;
      n -= static_cast<size_t>(w);
      pos_ += static_cast<uint64_t>(w);
    }
  }
  void pad_to(uint64_t off) {
    static const char zeros[256] = {};
    if (off < pos_)
      throw ConvertError(path_ + ": internal layout error (offset " + std::to_string(off) +
                         " behind " + std::to_string(pos_) + ")");
    while (pos_ < off)
      write(zeros, static_cast<size_t>(std::min<uint64_t>(sizeof zeros, off - pos_)));
  }
  uint64_t pos() const { return pos_; }
  // fsync, then rename (or link) over `out` while still holding the lock, then fsync the directory:
  // at every instant `out` is the old file or the complete new one.
  void commit(bool force) {
    if (::fsync(fd_) != 0) fail("fsync failed", errno);
    // Drop the written (now clean) pages from the page cache: written pages stay there as 4 KiB
    // pages, and a runtime mapping the file decodes slower than from the 2 MiB folios its own
    // faults read (platform_posix.c; docs/performance.md). A hint: its failure changes nothing.
    (void)::posix_fadvise(fd_, 0, 0, POSIX_FADV_DONTNEED);
    if (force) {
      rename_into_place();
    } else if (::link(path_.c_str(), out_.c_str()) == 0) {  // fails if `out` appeared meanwhile
      ::unlink(path_.c_str());
      committed_ = true;
    } else {
      if (errno == EEXIST || path_exists(out_))
        throw ConvertError(out_ + ": already exists (use --force to overwrite)");
      rename_into_place();  // filesystems without hard links: rename after the existence check
    }
    ::close(fd_);  // after a successful fsync a close error cannot lose data
    fd_ = -1;
    fsync_dir(dir_of(out_), out_);
  }

 private:
  [[noreturn]] void fail(const char* what, int err) {
    throw ConvertError(out_ + ": " + what + " (" + std::strerror(err) +
                       "); nothing was replaced: an existing file keeps its old contents");
  }
  void rename_into_place() {
    if (::rename(path_.c_str(), out_.c_str()) != 0)
      fail("cannot rename the temporary file into place", errno);
    committed_ = true;
  }

  std::string out_;
  std::string path_;
  int fd_ = -1;
  uint64_t pos_ = 0;
  bool committed_ = false;
};

struct Placed {
  std::string name;
  StoredTensor t;
  uint64_t data_offset = 0, params_offset = 0, params_size = 0;
};

std::string type_name(const StoredTensor& t) {
  switch (t.dtype) {
    case DType::kF32:
      return "f32";
    case DType::kF16:
      return "f16";
    case DType::kBF16:
      return "bf16";
    case DType::kU8ZeroOne: {
      std::string n = t.group_size == 0 ? "u8/row" : "u8/g" + std::to_string(t.group_size);
      if (t.params_dtype == DType::kF16) n += "/f16";
      if (t.act_group != 0) n += "/a" + std::to_string(t.act_group);
      return n;
    }
  }
  return "?";
}

flatbuffers::Offset<fb::ModelConfig> build_config(flatbuffers::FlatBufferBuilder& fbb,
                                                  const ConfigSpec& c) {
  auto arch = fbb.CreateString(c.architecture);
  auto rope = fb::CreateRopeScaling(fbb, c.rope_scaling_type, c.rope_factor, c.rope_low_freq_factor,
                                    c.rope_high_freq_factor, c.rope_original_max_position);
  return fb::CreateModelConfig(fbb, arch, c.hidden_size, c.num_layers, c.num_heads, c.num_kv_heads,
                               c.head_dim, c.intermediate_size, c.vocab_size, c.max_context,
                               c.rope_theta, rope, c.norm_eps, c.tie_embeddings, c.activation,
                               c.attention_bias, c.mlp_bias, c.sliding_window);
}

// The whole FlatBuffer, with `weights_offset` (nonzero, so the field is always present and the
// buffer's size does not depend on its value).
void build_flatbuffer(flatbuffers::FlatBufferBuilder& fbb, const ModelIR& ir,
                      const std::vector<Placed>& placed, uint64_t required_features,
                      uint64_t weights_offset, uint64_t weights_size,
                      const std::string& weights_sha256) {
  fbb.Clear();
  flatbuffers::Offset<fb::ModelConfig> config = 0;
  if (ir.has_config) config = build_config(fbb, ir.config);
  flatbuffers::Offset<fb::Tokenizer> tok = 0;
  if (ir.has_tokenizer) tok = build_tokenizer(fbb, ir.tokenizer);
  flatbuffers::Offset<flatbuffers::Vector<flatbuffers::Offset<fb::Tensor>>> tensors = 0;
  if (ir.has_config) {
    std::vector<flatbuffers::Offset<fb::Tensor>> v;
    for (const Placed& p : placed) {
      v.push_back(fb::CreateTensorDirect(
          fbb, p.name.c_str(), &p.t.shape, dtype_to_fb(p.t.dtype), p.t.group_size, p.data_offset,
          p.t.data.size(), p.params_offset, p.params_size, static_cast<float>(p.t.rel_rms_error),
          dtype_to_fb(p.t.params_dtype), p.t.act_group,
          p.t.blocked ? fb::Layout::BLOCKS16 : fb::Layout::ROWS));
    }
    tensors = fbb.CreateVector(v);
  }
  std::vector<flatbuffers::Offset<flatbuffers::String>> keep;
  for (const std::string& k : ir.keep_float) keep.push_back(fbb.CreateString(k));
  std::vector<flatbuffers::Offset<fb::FloatChoice>> choices;
  for (const auto* list : {&ir.float_choices, &ir.float_measured}) {
    for (const FloatChoiceRecord& c : *list) {
      choices.push_back(fb::CreateFloatChoiceDirect(fbb, c.name.c_str(), dtype_to_fb(c.dtype),
                                                    c.pattern.c_str(), static_cast<float>(c.kl)));
    }
  }
  auto prov = fb::CreateProvenanceDirect(fbb, ir.source.c_str(), EMBER_VERSION_STRING,
                                         ir.command_line.c_str(), ir.source_dtype.c_str(),
                                         keep.empty() ? nullptr : &keep,
                                         choices.empty() ? nullptr : &choices);
  flatbuffers::Offset<flatbuffers::Vector<flatbuffers::Offset<fb::Adapter>>> adapters = 0;
  if (!ir.adapters.empty()) {
    std::vector<flatbuffers::Offset<fb::Adapter>> v;
    for (const AdapterRecord& a : ir.adapters) {
      std::vector<flatbuffers::Offset<flatbuffers::String>> mods;
      for (const auto& m : a.modules) mods.push_back(fbb.CreateString(m));
      v.push_back(fb::CreateAdapterDirect(fbb, a.name.c_str(), a.sha256.c_str(), a.r, a.alpha,
                                          a.scale, a.use_rslora, &mods));
    }
    adapters = fbb.CreateVector(v);
  }
  // Only u8 tensors changed layout in format 2: a float-only file stays readable by runtime 1, and
  // one whose u8 tensors use neither f16 params nor activation groups by runtime 2.
  uint32_t min_runtime = (required_features & kFeatureZeroOneU8) != 0 ? kFormatVersionU8Blocks : 1;
  if ((required_features & (kFeatureZeroOneF16Params | kFeatureActGroups)) != 0) {
    min_runtime = kFormatVersionU8Params;
  }
  if ((required_features & kFeatureFloatBlocks) != 0) min_runtime = kFormatVersionFloatBlocks;
  flatbuffers::Offset<flatbuffers::String> digest = 0;
  if (!weights_sha256.empty()) digest = fbb.CreateString(weights_sha256);
  auto root = fb::CreateModel(fbb, kFormatVersion, min_runtime, required_features, 0, config, tok,
                              tensors, weights_offset, weights_size, prov, adapters, digest);
  fbb.FinishSizePrefixed(root, kFileIdentifier);
}

// Hex sha256 of the weight region exactly as written: each tensor's data and params at their
// offsets, zero padding between and after them, weights_size bytes in all.
std::string weights_sha256(const std::vector<Placed>& placed, uint64_t weights_size) {
  EVP_MD_CTX* md = EVP_MD_CTX_new();
  bool ok = md != nullptr && EVP_DigestInit_ex(md, EVP_sha256(), nullptr) == 1;
  static const char zeros[4096] = {};
  uint64_t at = 0;
  auto pad_to = [&](uint64_t to) {
    while (ok && at < to) {
      const size_t n = static_cast<size_t>(std::min<uint64_t>(to - at, sizeof zeros));
      ok = EVP_DigestUpdate(md, zeros, n) == 1;
      at += n;
    }
  };
  auto put = [&](const void* p, size_t n) {
    ok = ok && EVP_DigestUpdate(md, p, n) == 1;
    at += n;
  };
  for (const Placed& p : placed) {
    pad_to(p.data_offset);
    if (!p.t.data.empty()) put(p.t.data.data(), p.t.data.size());
    if (!p.t.params.empty()) {
      pad_to(p.params_offset);
      put(p.t.params.data(), p.params_size);
    }
  }
  pad_to(weights_size);
  unsigned char digest[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  ok = ok && EVP_DigestFinal_ex(md, digest, &len) == 1 && len == 32;
  EVP_MD_CTX_free(md);
  if (!ok) throw ConvertError("sha256 of the weights failed (OpenSSL EVP_Digest*)");
  return hex_string(digest, len);
}

}  // namespace

int remove_stale_temporaries(const std::string& out) {
  const std::string dir = dir_of(out);
  const std::string prefix = base_of(out) + kTempInfix;
  DIR* d = ::opendir(dir.c_str());
  if (!d) return 0;
  std::vector<std::string> stale;
  while (const dirent* e = ::readdir(d)) {
    const std::string name = e->d_name;
    if (name.size() == prefix.size() + 6 && name.compare(0, prefix.size(), prefix) == 0)
      stale.push_back(dir + "/" + name);
  }
  ::closedir(d);
  int removed = 0;
  for (const std::string& p : stale) {
    const int fd = ::open(p.c_str(), O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
    if (fd < 0) continue;
    struct stat st;
    // Only a regular file nobody holds locked: its writer died (a live one keeps its lock).
    if (::fstat(fd, &st) == 0 && S_ISREG(st.st_mode) && ::flock(fd, LOCK_EX | LOCK_NB) == 0 &&
        ::unlink(p.c_str()) == 0) {
      ++removed;
    }
    ::close(fd);
  }
  return removed;
}

void check_output_path(const std::string& out, bool force) {
  if (out.empty()) throw ConvertError("no output path given (-o OUT.ember)");
  if (!force && path_exists(out))
    throw ConvertError(out + ": already exists (use --force to overwrite)");
}

bool float_rows_blocked(const ModelIR& ir, const std::string& name, const WriteOptions& opts) {
  return opts.float_blocks && !(name == "model.embed_tokens.weight" && !ir.config.tie_embeddings);
}

WriteReport write_ember(const ModelIR& ir, const std::string& out, const WriteOptions& opts) {
  check_output_path(out, opts.force);
  if (!ir.has_config && !ir.tensors.empty())
    throw ConvertError("a file without a config cannot hold tensors");

  // Tensor order: natural name order (layer 2 before layer 10).
  std::vector<const std::string*> names;
  for (const auto& kv : ir.tensors) names.push_back(&kv.first);
  std::sort(names.begin(), names.end(),
            [](const std::string* a, const std::string* b) { return natural_less(*a, *b); });

  std::map<std::string, const FloatChoiceRecord*> kept;  // --keep-float: name -> its choice
  for (const FloatChoiceRecord& c : ir.float_choices) kept[c.name] = &c;

  WriteReport report;
  std::vector<Placed> placed;
  placed.reserve(names.size());
  uint64_t required = 0;
  uint64_t offset = 0;  // inside the weight region
  Progress qbar(opts.progress, opts.progress_tty, "quantizing", names.size());
  for (size_t i = 0; i < names.size(); ++i) {
    const FloatTensor& src = ir.tensors.at(*names[i]);
    Placed p;
    p.name = *names[i];
    const auto keep = kept.find(p.name);
    const bool keep_float = keep != kept.end();
    QuantMode mode = opts.mode;
    if (keep_float) mode = keep->second->dtype == DType::kF16 ? QuantMode::F16 : QuantMode::F32;
    try {
      p.t = store_tensor(src, mode, opts.u8);
      if (float_rows_blocked(ir, p.name, opts)) block_float_rows(&p.t);
    } catch (const ConvertError& e) {
      throw ConvertError("tensor '" + p.name + "': " + e.what());
    }
    if (p.t.dtype == DType::kU8ZeroOne) required |= kFeatureZeroOneU8;
    if (p.t.dtype == DType::kU8ZeroOne && p.t.params_dtype == DType::kF16) {
      required |= kFeatureZeroOneF16Params;
    }
    if (p.t.dtype == DType::kU8ZeroOne && p.t.act_group != 0) required |= kFeatureActGroups;
    if (p.t.dtype == DType::kF16) required |= kFeatureF16;
    if (p.t.dtype == DType::kBF16) required |= kFeatureBF16;
    if (p.t.blocked) required |= kFeatureFloatBlocks;
    p.data_offset = offset;
    offset = align_up(offset + p.t.data.size(), kWeightAlignment);
    if (!p.t.params.empty()) {
      p.params_offset = offset;
      p.params_size = p.t.params.size();
      offset = align_up(offset + p.params_size, kWeightAlignment);
    }
    TensorReport tr;
    tr.name = p.name;
    tr.type = type_name(p.t);
    tr.bytes = p.t.data.size() + p.params_size;
    tr.rel_rms_error = p.t.rel_rms_error;
    if (keep_float) tr.kept_by = keep->second->pattern;
    report.weight_bytes += tr.bytes;
    report.f32_bytes += src.data.size() * sizeof(float);
    report.tensors.push_back(tr);
    placed.push_back(std::move(p));
    qbar.update(i + 1);
  }
  const uint64_t weights_size = offset;

  flatbuffers::FlatBufferBuilder fbb(1 << 16);
  const std::string digest = placed.empty() ? "" : weights_sha256(placed, weights_size);
  build_flatbuffer(fbb, ir, placed, required, /*weights_offset=*/kWeightAlignment, weights_size,
                   digest);
  const uint64_t fb_size = fbb.GetSize();  // includes the 4-byte size prefix
  const uint64_t weights_offset = align_up(fb_size, kWeightAlignment);
  build_flatbuffer(fbb, ir, placed, required, weights_offset, weights_size, digest);
  if (fbb.GetSize() != fb_size)
    throw ConvertError("internal error: FlatBuffer size changed between passes");

  remove_stale_temporaries(out);
  TempFile tmp(out);
  tmp.write(fbb.GetBufferPointer(), fbb.GetSize());
  tmp.pad_to(weights_offset);
  Progress wbar(opts.progress, opts.progress_tty, "writing", placed.size());
  for (size_t i = 0; i < placed.size(); ++i) {
    const Placed& p = placed[i];
    tmp.pad_to(weights_offset + p.data_offset);
    if (!p.t.data.empty()) tmp.write(p.t.data.data(), p.t.data.size());
    if (!p.t.params.empty()) {
      tmp.pad_to(weights_offset + p.params_offset);
      tmp.write(p.t.params.data(), p.params_size);
    }
    wbar.update(i + 1);
  }
  tmp.pad_to(weights_offset + weights_size);
  report.file_size = tmp.pos();
  tmp.commit(opts.force);
  return report;
}

void print_report(const WriteReport& r, std::ostream& os) {
  size_t w = 6;
  bool any_kept = false;
  for (const auto& t : r.tensors) {
    w = std::max(w, t.name.size());
    any_kept = any_kept || !t.kept_by.empty();
  }
  std::ostringstream s;
  s << std::left << std::setw(static_cast<int>(w)) << "tensor"
    << "  " << std::setw(15) << "type" << std::right << std::setw(12) << "bytes" << std::setw(14)
    << "rel RMS err" << (any_kept ? "  kept float by" : "") << "\n";
  for (const auto& t : r.tensors) {
    s << std::left << std::setw(static_cast<int>(w)) << t.name << "  " << std::setw(15) << t.type
      << std::right << std::setw(12) << t.bytes << std::setw(14);
    if (t.rel_rms_error == 0) {
      s << "0";
    } else {
      std::ostringstream e;
      e << std::scientific << std::setprecision(3) << t.rel_rms_error;
      s << e.str();
    }
    if (!t.kept_by.empty()) s << "  '" << t.kept_by << "'";
    s << "\n";
  }
  auto mib = [](uint64_t b) {
    std::ostringstream o;
    o << std::fixed << std::setprecision(2) << b / (1024.0 * 1024.0) << " MiB";
    return o.str();
  };
  s << "file size: " << r.file_size << " bytes (" << mib(r.file_size) << ")\n";
  s << "model bytes: " << r.weight_bytes << " vs f32 " << r.f32_bytes;
  if (r.f32_bytes) {
    s << " (" << std::fixed << std::setprecision(1) << 100.0 * r.weight_bytes / r.f32_bytes << "%, "
      << std::setprecision(2) << 32.0 * r.weight_bytes / r.f32_bytes << " bits per weight)";
  }
  s << "\n";
  os << s.str();
}

}  // namespace convert
}  // namespace ember
