// ember-convert HF_DIR -o OUT.ember [--quant f32|f16|u8] [--group N] [--params f32|f16]
//               [--act-group N] [--force] [--tokenizer-only] [--lora DIR[:SCALE]]...
// ember-convert --synthetic SHAPE --seed N -o OUT.ember [--quant ...] [--group N]
// Reads a Hugging Face Llama checkpoint, merges LoRA adapters in float32, quantizes, writes one
// .ember file atomically. Any error: "ember-convert: error: <message>" on stderr, exit code 1.
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <cstdio>
#include <exception>
#include <iostream>
#include <string>
#include <vector>

#include "hf_model.h"
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

int run(int argc, char** argv) {
  using namespace ember::convert;
  CLI::App app{"ember-convert: Hugging Face Llama checkpoint -> .ember model file"};
  std::string hf_dir, out, quant = "u8", params = "f16", act_group = "auto";
  int64_t group = 16;
  bool force = false, tokenizer_only = false;
  std::vector<std::string> loras;
  app.add_option("HF_DIR", hf_dir,
                 "Hugging Face model directory (config.json, *.safetensors, tokenizer.json)");
  app.add_option("-o,--output", out, "output .ember file")->required();
  app.add_option("--quant", quant, "weight type: f32, f16 or u8 (zero-one)")
      ->check(CLI::IsMember({"f32", "f16", "u8"}));
  app.add_option("--group", group,
                 "u8 group size along the input dimension (0 = a whole row; default 16: tracks f32 "
                 "greedy output, 64 is smaller and faster)")
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
  app.add_flag("--force", force, "overwrite OUT if it exists");
  app.add_flag("--tokenizer-only", tokenizer_only,
               "write only the tokenizer (no config, no tensors)");
  app.add_option("--lora", loras,
                 "PEFT LoRA adapter DIR[:SCALE] merged in float32 before quantizing (repeatable)");
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
  opts.force = force;
  opts.progress = &std::cerr;
  opts.progress_tty = ::isatty(STDERR_FILENO) != 0;
  check_output_path(out, force);  // fail fast, before reading gigabytes

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
  ir.command_line = quoted_command_line(argc, argv);

  const WriteReport report = write_ember(ir, out, opts);
  if (!tokenizer_only) print_report(report, std::cout);
  std::cout << "wrote " << out << " (" << report.file_size << " bytes)\n";
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  try {
    return run(argc, argv);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "ember-convert: error: %s\n", e.what());
    return 1;
  }
}
