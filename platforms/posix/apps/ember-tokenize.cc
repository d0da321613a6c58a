// ember-tokenize: what a model's tokenizer makes of a text (like llama.cpp's llama-tokenize).
//   ember-tokenize -m MODEL (-p TEXT | -f FILE) [--parse-special] [--no-bos] [--ids | --pieces |
//   --json] ember-tokenize -m MODEL --decode "1 15043 2" ember-tokenize -m MODEL -f FILE --bench 20
//   (encode speed in MB/s)
// The model may be a full model or a tokenizer-only file (ember-convert --tokenizer-only).
#include <CLI/CLI.hpp>
#include <cstdio>
#include <ctime>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include "app_util.h"
#include "ember/ember.h"

namespace {

using ember_app::tokenize_text;

int fail(const char* what, ember_status s) { return ember_app::fail("ember-tokenize", what, s); }

// The text of one id as it reads inside a text (not as the first piece: a SentencePiece piece keeps
// its leading space). Bytes of an unfinished UTF-8 character are shown as \xNN.
std::string piece_of(const ember_model* m, int32_t id) {
  ember_detok_stream st;
  ember_detok_stream_init(&st, 0);
  st.n_emitted = 1;
  std::vector<char> buf(256);
  size_t n = 0;
  ember_status s = ember_detok_stream_feed(m, &st, id, buf.data(), buf.size(), &n);
  if (s == EMBER_ERR_BUFFER_TOO_SMALL) {
    buf.resize(n);
    ember_detok_stream_init(&st, 0);
    st.n_emitted = 1;
    s = ember_detok_stream_feed(m, &st, id, buf.data(), buf.size(), &n);
  }
  if (s != EMBER_OK) return "?";
  std::string out(buf.data(), n);
  for (uint32_t i = 0; i < st.n_pending; ++i) {
    char hex[8];
    std::snprintf(hex, sizeof(hex), "\\x%02X", st.pending[i]);
    out += hex;
  }
  return out;
}

std::string json_string(const std::string& s) { return "\"" + ember_app::json_escape(s) + "\""; }

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"ember-tokenize: show how a model's tokenizer encodes a text, or decode ids"};
  std::string model_path, prompt, file, decode;
  bool parse_special = false, no_bos = false, show_ids = false, show_pieces = false,
       show_json = false;
  bool skip_special = false;
  int bench = 0;
  app.add_option("-m,--model", model_path, "Model file (.ember; a tokenizer-only file is fine)")
      ->required();
  auto* p_opt = app.add_option("-p,--prompt", prompt, "Text to encode");
  auto* f_opt = app.add_option("-f,--file", file, "Encode the contents of this file");
  p_opt->excludes(f_opt);
  app.add_flag("--parse-special", parse_special,
               "Match special-token text (\"<s>\") as the special token");
  app.add_flag("--no-bos", no_bos, "Do not add BOS/EOS as the tokenizer config says");
  auto* o_ids = app.add_flag("--ids", show_ids, "Print only the ids, as [1, 2, 3]");
  auto* o_pieces =
      app.add_flag("--pieces", show_pieces, "Print one line per token: id -> 'text' (default)");
  auto* o_json = app.add_flag("--json", show_json, "Print {\"ids\": [...], \"pieces\": [...]}");
  o_ids->excludes(o_pieces)->excludes(o_json);
  o_pieces->excludes(o_json);
  app.add_option("--decode", decode,
                 "Decode these ids (separated by spaces or commas) and print the text");
  app.add_flag("--skip-special", skip_special, "With --decode: drop BOS/EOS/control tokens");
  app.add_option("--bench", bench, "Encode the text this many times and report MB/s on stderr");
  CLI11_PARSE(app, argc, argv);

  ember_model* m = nullptr;
  ember_status s = ember_model_load_file(model_path.c_str(), &m);
  if (s != EMBER_OK) return fail("loading the model", s);

  if (!decode.empty()) {
    std::vector<int32_t> ids;
    std::string d = decode;
    for (char& c : d) {
      if (c == ',' || c == '[' || c == ']') c = ' ';
    }
    std::istringstream in(d);
    long long v;
    while (in >> v) {
      if (v < INT32_MIN || v > INT32_MAX) {
        std::fprintf(stderr, "ember-tokenize: --decode: %lld is not a token id\n", v);
        ember_model_free(m);
        return 1;
      }
      ids.push_back(static_cast<int32_t>(v));
    }
    if (!in.eof()) {
      std::fprintf(stderr, "ember-tokenize: --decode: cannot read ids from \"%s\"\n",
                   decode.c_str());
      ember_model_free(m);
      return 1;
    }
    const uint32_t flags = skip_special ? EMBER_DETOKENIZE_SKIP_SPECIAL : 0;
    size_t n = 0;
    s = ember_detokenize(m, ids.data(), ids.size(), flags, nullptr, 0, &n);
    std::string text(n, '\0');
    if (s == EMBER_OK || s == EMBER_ERR_BUFFER_TOO_SMALL) {
      s = ember_detokenize(m, ids.data(), ids.size(), flags, n ? &text[0] : nullptr, n, &n);
    }
    if (s != EMBER_OK) {
      ember_model_free(m);
      return fail("decoding", s);
    }
    std::fwrite(text.data(), 1, n, stdout);
    std::fputc('\n', stdout);
    ember_model_free(m);
    return 0;
  }

  std::string text = prompt;
  if (!file.empty()) {
    std::ifstream in(file, std::ios::binary);
    if (!in) {
      std::fprintf(stderr, "ember-tokenize: cannot open %s\n", file.c_str());
      ember_model_free(m);
      return 1;
    }
    std::stringstream ss;
    ss << in.rdbuf();
    text = ss.str();
  } else if (p_opt->count() == 0) {
    std::fprintf(stderr, "ember-tokenize: give a text with -p or -f, or ids with --decode\n");
    ember_model_free(m);
    return 1;
  }
  const uint32_t flags = (no_bos ? 0u : EMBER_TOKENIZE_ADD_SPECIAL) |
                         (parse_special ? EMBER_TOKENIZE_PARSE_SPECIAL : 0u);
  std::vector<int32_t> ids;
  s = tokenize_text(m, text, flags, &ids);
  if (s != EMBER_OK) {
    ember_model_free(m);
    return fail("encoding", s);
  }

  if (bench > 0) {
    // CPU time too: on a loaded machine wall time measures the scheduler, not the tokenizer.
    const double t0 = ember_app::now_seconds();
    const std::clock_t c0 = std::clock();
    for (int i = 0; i < bench; ++i) {
      size_t n = 0;
      s = ember_tokenize(m, text.data(), text.size(), flags, ids.data(), ids.size(), &n);
      if (s != EMBER_OK) {
        ember_model_free(m);
        return fail("encoding", s);
      }
    }
    const double dt = ember_app::now_seconds() - t0;
    const double cpu = double(std::clock() - c0) / CLOCKS_PER_SEC;
    const double mb = text.size() * double(bench) / 1e6;
    std::fprintf(stderr,
                 "ember-tokenize: %zu bytes -> %zu tokens; %d runs: wall %.3f s = %.2f MB/s, "
                 "cpu %.3f s = %.2f MB/s (%.0f tokens/s of cpu)\n",
                 text.size(), ids.size(), bench, dt, mb / dt, cpu, mb / cpu,
                 ids.size() * double(bench) / cpu);
    ember_model_free(m);
    return 0;
  }

  if (show_ids) {
    std::printf("[");
    for (size_t i = 0; i < ids.size(); ++i) std::printf("%s%d", i ? ", " : "", ids[i]);
    std::printf("]\n");
  } else if (show_json) {
    std::printf("{\"ids\": [");
    for (size_t i = 0; i < ids.size(); ++i) std::printf("%s%d", i ? ", " : "", ids[i]);
    std::printf("], \"pieces\": [");
    for (size_t i = 0; i < ids.size(); ++i) {
      std::printf("%s%s", i ? ", " : "", json_string(piece_of(m, ids[i])).c_str());
    }
    std::printf("]}\n");
  } else {
    for (int32_t id : ids) std::printf("%6d -> '%s'\n", id, piece_of(m, id).c_str());
  }
  ember_model_free(m);
  return 0;
}
