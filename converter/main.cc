// ember-convert HF_DIR -o OUT.ember [--quant f32|f16|u8] [--group N] [--params f32|f16]
//               [--act-group N] [--force] [--tokenizer-only] [--lora DIR[:SCALE]]...
//               [--keep-float PATTERN[:f32|f16]]... [--auto-float BUDGET[:f16|f32] [--eval-text
//               FILE]]
// ember-convert --synthetic SHAPE --seed N -o OUT.ember [--quant ...] [--group N]
// Reads a Hugging Face Llama checkpoint, merges LoRA adapters in float32, quantizes, writes one
// .ember file atomically. Any error: "ember-convert: error: <message>" on stderr, exit code 1.
#include <signal.h>
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <cstdio>
#include <exception>
#include <iostream>
#include <string>
#include <vector>

#include "auto_float.h"
#include "hf_model.h"
#include "keep_float.h"
#include "lora.h"
#include "quantize.h"
#include "synthetic.h"

#ifndef EMBER_CONVERT_DEFAULT_SYNTHETIC_TOKENIZER
#define EMBER_CONVERT_DEFAULT_SYNTHETIC_TOKENIZER \
  "../shared/tokenizers/llama2"  // relative to the cwd
#endif
#include "writer.h"

namespace {

// The command line as a shell would need it (recorded in the file's provenance).
std::string quoted_command_line(int argc, char** argv) {
  std::string s;
  for (int i = 0; i < argc; ++i) {
    std::string a = argv[i];
    const bool plain =
        !a.empty() &&
        a.find_first_not_of(
            "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_./:=+,@%") ==
            std::string::npos;
    if (!s.empty()) s += ' ';
    if (plain) {
      s += a;
    } else {
      s += '\'';
      for (char c : a) s += c == '\'' ? std::string("'\\''") : std::string(1, c);
      s += '\'';
    }
  }
  return s;
}

// --auto-float and the options of its evaluation.
struct AutoFloatArgs {
  std::string budget, eval_text;
  uint32_t ctx = 0, threads = 1;
  int64_t chunks = -1;
};

void add_auto_float_options(CLI::App& app, AutoFloatArgs* a) {
  app.add_option("--auto-float", a->budget,
                 "BUDGET[:f16|f32] (with --quant u8): keep in float (default f16) the matrices "
                 "whose quantization moves the model's output most, measured one by one against "
                 "the f32 model (KL), worst first, while the file grows by at most BUDGET: '5%' of "
                 "the quantized file, or bytes: '10MB', '2MiB', '300000'");
  app.add_option("--eval-text", a->eval_text,
                 "text file --auto-float measures on (default: windows sampled from the f32 "
                 "model at temperature 1, seed 1)");
  app.add_option("--eval-ctx", a->ctx,
                 "--auto-float's window in tokens (default min(512, context))");
  app.add_option("--eval-chunks", a->chunks,
                 "--auto-float's windows per measurement (default: about 2048 scored tokens; 0 = "
                 "every window of --eval-text)")
      ->check(CLI::Range(int64_t{0}, int64_t{1} << 20));
  app.add_option("--eval-threads", a->threads, "threads for --auto-float's measurements")
      ->check(CLI::Range(1, 256));
}

int run(int argc, char** argv) {
  using namespace ember::convert;
  CLI::App app{"ember-convert: Hugging Face Llama checkpoint -> .ember model file"};
  std::string hf_dir, out, quant = "u8", params = "f16", act_group = "auto";
  int64_t group = 64;
  bool force = false, tokenizer_only = false;
  std::vector<std::string> loras;
  app.add_option("HF_DIR", hf_dir,
                 "Hugging Face model directory (config.json, *.safetensors, tokenizer.json)");
  app.add_option("-o,--output", out, "output .ember file")->required();
  app.add_option("--quant", quant, "weight type: f32, f16 or u8 (zero-one)")
      ->check(CLI::IsMember({"f32", "f16", "u8"}));
  app.add_option(
         "--group", group,
         "u8 group size along the input dimension (0 = a whole row; default 64: 8.5 bits per "
         "weight with f16 params; see docs/accuracy.md)")
      ->check(CLI::Range(int64_t{0}, int64_t{1} << 30));
  app.add_option("--params", params,
                 "u8 scale and min per group: f16 (default, 8 + 32/G bits per weight) or f32 "
                 "(8 + 64/G, readable by runtime 2)")
      ->check(CLI::IsMember({"f32", "f16"}));
  app.add_option("--act-group", act_group,
                 "u8: quantize activations in groups of N (a multiple of 4 dividing the group; 0 = "
                 "the weight group, as runtime 2); default auto: 16 where the group is larger")
      ->check([](const std::string& v) {
        if (v == "auto") return std::string();
        return v.find_first_not_of("0123456789") == std::string::npos && !v.empty() && v.size() <= 9
                   ? std::string()
                   : "'" + v + "' is not auto or a number of values";
      });
  std::string float_layout = "blocks";
  app.add_option("--float-layout", float_layout,
                 "f32/f16 matrices: blocks (default: row blocks of 16, read by the runtime's float "
                 "GEMVs without transposes; needs runtime 4) or rows (row-major, as runtime 3 "
                 "and earlier read)")
      ->check(CLI::IsMember({"blocks", "rows"}));
  app.add_flag("--force", force, "overwrite OUT if it exists");
  app.add_flag("--tokenizer-only", tokenizer_only,
               "write only the tokenizer (no config, no tensors)");
  app.add_option("--lora", loras,
                 "PEFT LoRA adapter DIR[:SCALE] merged in float32 before quantizing (repeatable)");
  std::vector<std::string> keep_float;
  app.add_option("--keep-float", keep_float,
                 "PATTERN[:f32|f16] (repeatable; with --quant u8 or f16): the matrices whose "
                 "Hugging Face names match this glob (fnmatch: * ? [...], e.g. 'lm_head.weight', "
                 "'*.down_proj.*', 'model.layers.0.*') are stored in float instead, f32 unless "
                 ":f16 is given. In a tied model 'lm_head.weight' names the shared embedding. A "
                 "pattern matching no matrix, or two giving one tensor different types, is an "
                 "error");
  AutoFloatArgs af;
  add_auto_float_options(app, &af);
  std::string synthetic, synthetic_tokenizer = EMBER_CONVERT_DEFAULT_SYNTHETIC_TOKENIZER;
  uint64_t seed = 1;
  app.add_option("--synthetic", synthetic,
                 "random-weight model of a named shape instead of HF_DIR: stories15m, stories110m, "
                 "tinyllama-1.1b");
  app.add_option("--seed", seed, "random seed for --synthetic");
  app.add_option("--synthetic-tokenizer", synthetic_tokenizer,
                 "tokenizer.json directory for --synthetic");
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    return app.exit(e);
  }
  if (hf_dir.empty() && synthetic.empty())
    throw ConvertError("missing HF_DIR (a Hugging Face model directory)");
  if (!hf_dir.empty() && !synthetic.empty())
    throw ConvertError("give either HF_DIR or --synthetic, not both");

  WriteOptions opts;
  opts.mode = parse_quant_mode(quant);
  opts.u8.group = static_cast<uint32_t>(group);
  opts.u8.params = params == "f16" ? ember::DType::kF16 : ember::DType::kF32;
  opts.u8.act_group =
      act_group == "auto" ? kAutoActGroup : static_cast<uint32_t>(std::stoul(act_group));
  opts.float_blocks = float_layout == "blocks";
  opts.force = force;
  opts.progress = &std::cerr;
  opts.progress_tty = ::isatty(STDERR_FILENO) != 0;
  check_output_path(out, force);  // fail fast, before reading gigabytes
  remove_stale_temporaries(out);  // left by runs that were killed
  std::vector<KeepFloatRule> keep_rules;
  for (const std::string& k : keep_float) keep_rules.push_back(parse_keep_float(k));
  check_keep_float_mode(keep_rules, opts.mode);
  if (!keep_rules.empty() && tokenizer_only)
    throw ConvertError("--keep-float makes no sense with --tokenizer-only");
  AutoFloatOptions auto_float;
  if (!af.budget.empty()) {
    auto_float = parse_auto_float(af.budget);
    if (opts.mode != QuantMode::U8) throw ConvertError("--auto-float needs --quant u8");
    if (tokenizer_only) throw ConvertError("--auto-float makes no sense with --tokenizer-only");
    auto_float.eval_text = af.eval_text;
    auto_float.ctx = af.ctx;
    auto_float.chunks = af.chunks;
    auto_float.threads = af.threads;
    auto_float.log = &std::cerr;
  }

  ModelIR ir;
  if (!synthetic.empty()) {
    if (tokenizer_only || !loras.empty())
      throw ConvertError("--synthetic takes no --tokenizer-only or --lora");
    ir = make_synthetic(synthetic, seed, synthetic_tokenizer);
  } else if (tokenizer_only) {
    if (!loras.empty()) throw ConvertError("--lora makes no sense with --tokenizer-only");
    ir = load_hf_tokenizer_only(hf_dir);
  } else {
    ir = load_hf_model(hf_dir);
    if (!loras.empty()) {
      std::vector<LoraRequest> reqs;
      for (const auto& l : loras) reqs.push_back(parse_lora_arg(l));
      apply_loras(ir, reqs, std::cerr);
    }
  }
  apply_keep_float(keep_rules, opts.mode, &ir);
  ir.command_line = quoted_command_line(argc, argv);
  if (!af.budget.empty()) print_auto_float(choose_auto_float(&ir, opts, auto_float), std::cout);

  const WriteReport report = write_ember(ir, out, opts);
  if (!tokenizer_only) print_report(report, std::cout);
  std::cout << "wrote " << out << " (" << report.file_size << " bytes)\n";
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  // Past a file-size limit (ulimit -f) a write then fails with EFBIG, which is reported, instead of
  // SIGXFSZ killing the process without a word.
  ::signal(SIGXFSZ, SIG_IGN);
  try {
    return run(argc, argv);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "ember-convert: error: %s\n", e.what());
    return 1;
  }
}
