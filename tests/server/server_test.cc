// ember-server end to end with a real client: each test starts the server on a free loopback port
// and runs openai_client.cjs (the official OpenAI Node.js SDK, installed with npm into the build
// tree once) against it; the texts it expects are ember-run's for the same prompts. Where node,
// npm or the package are unavailable the tests skip with a message (fail under CI=true). The chat
// template rendering and the request checks are also tested here directly, without HTTP.
#include <fcntl.h>
#include <gtest/gtest.h>
#include <httplib.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "chat_template.h"
#include "ember/ember.h"
#include "server_api.h"
#include "support/cli.h"
#include "support/convert.h"
#include "support/json_file.h"
#include "support/test_support.h"

namespace {

using json = nlohmann::json;
using ember_test::quote;

// ------------------------------------------------------------------- the OpenAI SDK ---------

// The folder whose node_modules holds the `openai` package, installed on first use (under a lock:
// ctest runs these tests in parallel); "" with *why when node, npm or the registry is missing.
std::string openai_sdk(std::string* why) {
  std::string out;
  if (ember_test::run_command("command -v node && command -v npm", &out) != 0) {
    *why = "node and npm are not installed (.ci/install-deps installs them)";
    return "";
  }
  const std::string dir = ember_test::build_dir() + "/tests/server/node";
  const std::string cmd = "mkdir -p " + quote(dir) + " && cd " + quote(dir) +
                          " && flock .lock sh -c 'test -f node_modules/openai/package.json || "
                          "npm install --no-audit --no-fund --silent --prefix . openai@" +
                          EMBER_OPENAI_VERSION + "'";
  if (ember_test::run_command(cmd, &out) != 0) {
    *why = "npm could not install openai@" + std::string(EMBER_OPENAI_VERSION) + ": " + out;
    return "";
  }
  return dir;
}

#define REQUIRE_SDK(var)                                                                   \
  std::string var##_why_;                                                                  \
  const std::string var = openai_sdk(&var##_why_);                                         \
  if (var.empty()) {                                                                       \
    EMBER_SKIP_OR_FAIL_IN_CI() << "the OpenAI Node.js SDK is unavailable: " << var##_why_; \
  }

// ------------------------------------------------------------------- the server -------------

class Server {
 public:
  ~Server() {
    if (pid_ > 0) {
      kill(pid_, SIGKILL);
      waitpid(pid_, nullptr, 0);
    }
  }

  // Starts ember-server with `args` on a free port and waits until /health says ready.
  bool start(const std::string& model, const std::vector<std::string>& args) {
    log_ = ember_test::temp_path("server" + std::to_string(++count_) + ".log");
    std::vector<std::string> argv = {EMBER_SERVER_BIN, "-m", model, "--port", "0"};
    argv.insert(argv.end(), args.begin(), args.end());
    pid_ = fork();
    if (pid_ == 0) {
      const int fd = open(log_.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
      dup2(fd, 2);
      dup2(fd, 1);
      std::vector<char*> cargs;
      for (std::string& a : argv) cargs.push_back(&a[0]);
      cargs.push_back(nullptr);
      execv(cargs[0], cargs.data());
      _exit(127);
    }
    for (int i = 0; i < 600; ++i) {  // up to a minute: the host may be busy, ASan slow
      std::this_thread::sleep_for(std::chrono::milliseconds(100));
      const std::string l = log();
      const size_t at = l.find("listening on http://127.0.0.1:");
      if (port_ == 0 && at != std::string::npos) port_ = std::atoi(l.c_str() + at + 30);
      if (port_ != 0) {
        httplib::Client c("127.0.0.1", port_);
        auto r = c.Get("/health");
        if (r && r->status == 200) return true;
      }
      if (waitpid(pid_, nullptr, WNOHANG) == pid_) {
        pid_ = -1;
        break;
      }
    }
    ADD_FAILURE() << "ember-server did not become ready:\n" << log();
    return false;
  }

  // SIGTERM (unless the client sent it already) and the exit code.
  int stop(bool send = true) {
    if (send) kill(pid_, SIGTERM);
    int st = 0;
    waitpid(pid_, &st, 0);
    pid_ = -1;
    return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
  }

  std::string log() const {
    std::ifstream f(log_);
    std::stringstream ss;
    ss << f.rdbuf();
    return ss.str();
  }
  int port() const { return port_; }
  pid_t pid() const { return pid_; }

 private:
  static int count_;
  pid_t pid_ = -1;
  int port_ = 0;
  std::string log_;
};
int Server::count_ = 0;

// ember-run's greedy text (prompt included, 50 tokens) for every prompt of greedy.json.
json expected_texts(const std::string& model) {
  const std::string path = ember_test::shared_path("models/stories260K/expected/greedy.json");
  json out = json::array();
  const json all = ember_test::read_json(path);
  for (const json& r : all["results"]) {
    const std::string prompt = r["prompt"].get<std::string>();
    const ember_test::Cmd c = ember_test::run(std::string(EMBER_RUN_BIN) + " -m " + quote(model) +
                                              " -p " + quote(prompt) + " -n 50 --temp 0");
    EXPECT_EQ(c.code, 0) << c.err;
    std::string full = c.out;
    if (!full.empty() && full.back() == '\n') full.pop_back();
    out.push_back(json{{"prompt", prompt}, {"full", full}});
  }
  return out;
}

// Runs openai_client.cjs in `mode` against `s`; its output on failure.
void run_client(const std::string& sdk, const std::string& mode, const Server& s, json cfg) {
  cfg["base"] = "http://127.0.0.1:" + std::to_string(s.port());
  cfg["pid"] = s.pid();
  const std::string cfg_path = ember_test::temp_path(mode + "_cfg.json");
  const std::string text = cfg.dump();
  ember_test::write_file(cfg_path, text.data(), text.size());
  std::string out;
  const int code = ember_test::run_command("NODE_PATH=" + quote(sdk + "/node_modules") + " node " +
                                               quote(EMBER_CLIENT_JS) + " " + mode + " " +
                                               quote(cfg_path) + " 2>&1",
                                           &out);
  std::printf("%s", out.c_str());
  EXPECT_EQ(code, 0) << out << "\nserver log (end):\n"
                     << s.log().substr(s.log().size() > 4000 ? s.log().size() - 4000 : 0);
}

#define REQUIRE_STORIES_F32(var) \
  EMBER_REQUIRE_CONVERTED(var, "models/stories260K/hf", "--quant f32")

TEST(ServerOpenAI, CompletionsMatchEmberRun) {
  REQUIRE_STORIES_F32(model);
  REQUIRE_SDK(sdk);
  Server s;
  ASSERT_TRUE(s.start(model, {"--parallel", "4"}));
  run_client(sdk, "completions", s, json{{"expected", expected_texts(model)}});
  EXPECT_EQ(s.stop(), 0);
  const std::string log = s.log();
  EXPECT_NE(log.find("POST /v1/completions 200 tokens=250"), std::string::npos) << log;
  EXPECT_EQ(log.find("Once upon a time"), std::string::npos) << "prompt text in the log:\n" << log;
}

// The shared stories model with a Llama 2 chat template added to its tokenizer config.
TEST(ServerOpenAI, ChatCompletionWithTemplate) {
  EMBER_REQUIRE_SHARED(src, "models/stories260K/hf");
  REQUIRE_SDK(sdk);
  const std::string dir = ember_test::make_temp_dir("chat_hf");
  std::string out;
  ASSERT_EQ(ember_test::run_command("cp " + quote(src) + "/* " + quote(dir), &out), 0) << out;
  json cfg = ember_test::read_json(dir + "/tokenizer_config.json");
  cfg["chat_template"] =
      "{% if messages[0]['role'] == 'system' %}{% set loop_messages = messages[1:] %}{% set "
      "system_message = messages[0]['content'] %}{% else %}{% set loop_messages = messages %}{% "
      "set system_message = false %}{% endif %}{% for message in loop_messages %}{% if "
      "(message['role'] == 'user') != (loop.index0 % 2 == 0) %}{{ raise_exception('Conversation "
      "roles must alternate user/assistant/user/assistant/...') }}{% endif %}{% if loop.index0 == "
      "0 and system_message != false %}{% set content = '<<SYS>>\\n' + system_message + "
      "'\\n<</SYS>>\\n\\n' + message['content'] %}{% else %}{% set content = message['content'] "
      "%}{% endif %}{% if message['role'] == 'user' %}{{ bos_token + '[INST] ' + content.strip() "
      "+ ' [/INST]' }}{% elif message['role'] == 'assistant' %}{{ ' '  + content.strip() + ' ' + "
      "eos_token }}{% endif %}{% endfor %}";
  const std::string text = cfg.dump(2);
  ember_test::write_file(dir + "/tokenizer_config.json", text.data(), text.size());
  const std::string model = ember_test::converted_model(dir, "--quant f32");
  ASSERT_FALSE(model.empty());
  Server s;
  ASSERT_TRUE(s.start(model, {}));
  EXPECT_NE(s.log().find("chat template: Llama 2"), std::string::npos) << s.log();
  run_client(sdk, "chat", s, json::object());
  EXPECT_EQ(s.stop(), 0);
}

TEST(ServerOpenAI, ThirtyTwoClientsFourRequestsEach) {
  REQUIRE_STORIES_F32(model);
  REQUIRE_SDK(sdk);
  Server s;
  ASSERT_TRUE(s.start(model, {"--parallel", "4", "--queue", "32", "-t", "2"}));
#if defined(__SANITIZE_ADDRESS__)
  const bool check_rss = false;  // ASan's quarantine keeps freed memory resident
#else
  const bool check_rss = true;
#endif
  run_client(sdk, "concurrency", s,
             json{{"expected", expected_texts(model)}, {"parallel", 4}, {"check_rss", check_rss}});
  EXPECT_EQ(s.stop(), 0);
}

TEST(ServerOpenAI, AbuseGetsItsStatusAndTheServerServes) {
  REQUIRE_STORIES_F32(model);
  REQUIRE_SDK(sdk);
  const std::string key_file = ember_test::temp_path("key.txt");
  const std::string key = "sk-test-0123456789";
  ember_test::write_file(key_file, (key + "\n").data(), key.size() + 1);
  Server s;
  ASSERT_TRUE(s.start(model, {"--parallel", "2", "--queue", "2", "--api-key-file", key_file,
                              "--max-body", "1048576", "--timeout", "2"}));
  run_client(
      sdk, "abuse", s,
      json{{"expected", expected_texts(model)}, {"key", key}, {"parallel", 2}, {"places", 4}});
  EXPECT_EQ(s.stop(), 0);
  EXPECT_EQ(s.log().find(key), std::string::npos) << "the key in the log";
}

// SIGTERM while a stream runs: the stream ends properly, the process exits 0.
TEST(ServerOpenAI, SigtermFinishesRunningStreamsAndExitsZero) {
  REQUIRE_STORIES_F32(model);
  REQUIRE_SDK(sdk);
  Server s;
  ASSERT_TRUE(s.start(model, {"--shutdown-grace", "5"}));
  run_client(sdk, "shutdown", s, json::object());
  EXPECT_EQ(s.stop(/*send=*/false), 0) << s.log();
  EXPECT_NE(s.log().find("ember-server: stopped"), std::string::npos) << s.log();
}

TEST(ServerCli, RejectsBadOptionsWithAMessage) {
  REQUIRE_STORIES_F32(model);
  const std::string bin = EMBER_SERVER_BIN;
  ember_test::expect_fails_with(
      bin + " -m " + quote(ember_test::temp_path("absent.ember")) + " --port 0", "missing model",
      "loading the model");
  ember_test::expect_fails_with(
      bin + " -m " + quote(model) + " --api-key-file " + quote(ember_test::temp_path("nokey")),
      "missing key file", "cannot read --api-key-file");
  ember_test::expect_fails_with(bin + " -m " + quote(model) + " --parallel 0", "no slots",
                                "--parallel");
}

// ------------------------------------------------------------------- without HTTP -----------

// The converter keeps tokenizer_config.json's chat_template byte for byte; a checkpoint without one
// gives "".
TEST(ServerChatTemplate, ConverterKeepsTheTemplate) {
  EMBER_REQUIRE_SHARED(llama3, "tokenizers/llama3");
  EMBER_REQUIRE_CONVERTED(stories, "models/stories260K/hf", "--quant f32");
  const std::string tok = ember_test::converted_model(llama3, "--tokenizer-only");
  ASSERT_FALSE(tok.empty());
  const std::string want =
      ember_test::read_json(llama3 + "/tokenizer_config.json")["chat_template"].get<std::string>();
  for (const auto& c : {std::make_pair(tok, want), std::make_pair(stories, std::string())}) {
    ember_model* m = nullptr;
    ASSERT_EQ(ember_model_load_file(c.first.c_str(), &m), EMBER_OK) << ember_last_error();
    const char* t = nullptr;
    size_t n = 0;
    ASSERT_EQ(ember_model_chat_template(m, &t, &n), EMBER_OK);
    EXPECT_EQ(std::string(t, n), c.second);
    EXPECT_EQ(t[n], '\0');
    ember_model_free(m);
  }
}

using ember_app::ChatFamily;
using ember_app::ChatMessage;

std::string render(ChatFamily f, const std::vector<ChatMessage>& m, const std::string& tmpl = "") {
  std::string out, err;
  EXPECT_TRUE(ember_app::render_chat(f, tmpl, m, "<s>", "</s>", &out, &err)) << err;
  return out;
}

TEST(ServerChatTemplate, RecognisesTheFamiliesAndRefusesOthers) {
  std::string why;
  const std::string llama3 =
      ember_test::read_json(ember_test::shared_path("tokenizers/llama3/tokenizer_config.json"))
          .value("chat_template", "");
  EXPECT_EQ(ember_app::chat_family(llama3, &why), ChatFamily::kLlama3);
  EXPECT_EQ(ember_app::chat_family("{% for m in messages %}{{'<|im_start|>' + m['role'] + '\\n' + "
                                   "m['content'] + '<|im_end|>' + '\\n'}}{% endfor %}",
                                   &why),
            ChatFamily::kChatML);
  EXPECT_EQ(ember_app::chat_family("{{ '<|user|>\\n' }}{{ '<|assistant|>' }}", &why),
            ChatFamily::kZephyr);
  EXPECT_EQ(ember_app::chat_family("[INST] <<SYS>> [/INST]", &why), ChatFamily::kLlama2);
  // Mistral's [INST] without <<SYS>> is another format: refused, never rendered as Llama 2.
  EXPECT_EQ(ember_app::chat_family("{{ bos_token }}[INST] {{ m }} [/INST]", &why),
            ChatFamily::kUnknown);
  EXPECT_NE(why.find("not one ember-server knows"), std::string::npos) << why;
  EXPECT_EQ(ember_app::chat_family("", &why), ChatFamily::kUnknown);
  EXPECT_NE(why.find("no chat template"), std::string::npos) << why;
}

// Each family's text as its reference template renders it (add_generation_prompt).
TEST(ServerChatTemplate, RendersEachFamily) {
  const std::vector<ChatMessage> m = {
      {"system", "Be brief."}, {"user", " Hi "}, {"assistant", "Hello."}, {"user", "Bye"}};
  EXPECT_EQ(
      render(ChatFamily::kLlama2, m),
      "<s>[INST] <<SYS>>\nBe brief.\n<</SYS>>\n\n Hi [/INST] Hello. </s><s>[INST] Bye [/INST]");
  EXPECT_EQ(render(ChatFamily::kLlama3, m),
            "<s><|start_header_id|>system<|end_header_id|>\n\nBe brief.<|eot_id|>"
            "<|start_header_id|>user<|end_header_id|>\n\nHi<|eot_id|>"
            "<|start_header_id|>assistant<|end_header_id|>\n\nHello.<|eot_id|>"
            "<|start_header_id|>user<|end_header_id|>\n\nBye<|eot_id|>"
            "<|start_header_id|>assistant<|end_header_id|>\n\n");
  EXPECT_EQ(render(ChatFamily::kChatML, m),
            "<|im_start|>system\nBe brief.<|im_end|>\n<|im_start|>user\n Hi <|im_end|>\n"
            "<|im_start|>assistant\nHello.<|im_end|>\n<|im_start|>user\nBye<|im_end|>\n"
            "<|im_start|>assistant\n");
  EXPECT_EQ(render(ChatFamily::kZephyr, m),
            "<|system|>\nBe brief.</s>\n<|user|>\n Hi </s>\n<|assistant|>\nHello.</s>\n"
            "<|user|>\nBye</s>\n<|assistant|>\n");
  // Qwen's ChatML template writes a default system message where the chat has none.
  const std::string qwen =
      "{% for message in messages %}{% if loop.first and messages[0]['role'] != 'system' %}{{ "
      "'<|im_start|>system\\nYou are a helpful assistant.<|im_end|>\\n' }}{% endif "
      "%}{{'<|im_start|>"
      "' + message['role'] + '\\n' + message['content'] + '<|im_end|>' + '\\n'}}{% endfor %}";
  EXPECT_EQ(render(ChatFamily::kChatML, {{"user", "Hi"}}, qwen),
            "<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n<|im_start|>user\nHi"
            "<|im_end|>\n<|im_start|>assistant\n");
  std::string out, err;
  EXPECT_FALSE(ember_app::render_chat(ChatFamily::kLlama2, "", {{"user", "a"}, {"user", "b"}},
                                      "<s>", "</s>", &out, &err));
  EXPECT_NE(err.find("messages[1]"), std::string::npos) << err;
  EXPECT_FALSE(
      ember_app::render_chat(ChatFamily::kZephyr, "", {{"tool", "a"}}, "<s>", "</s>", &out, &err));
  EXPECT_NE(err.find("messages[0].role"), std::string::npos) << err;
}

TEST(ServerApi, ChecksEveryFieldByName) {
  ember_app::CompletionRequest c;
  ember_app::ApiError e;
  ASSERT_TRUE(ember_app::parse_completion_request(
      R"({"prompt": ["a", "b"], "max_tokens": 8.0, "temperature": 0, "top_k": 5, "seed": -3,
          "stop": ["x", ""], "stream": true, "stream_options": {"include_usage": true},
          "logit_bias": {}, "user": "u", "n": 1})",
      &c, &e))
      << e.message;
  EXPECT_EQ(c.prompts.size(), 2u);
  EXPECT_EQ(c.g.max_tokens, 8u);
  EXPECT_EQ(c.g.top_k, 5);
  EXPECT_EQ(c.g.seed, uint64_t(-3));
  EXPECT_EQ(c.g.stop, std::vector<std::string>{"x"});
  EXPECT_TRUE(c.g.stream && c.g.include_usage);
  const std::vector<std::pair<std::string, std::string>> bad = {
      {R"({"prompt": "a", "max_tokens": 1.5})", "max_tokens"},
      {R"({"prompt": "a", "max_tokens": 0})", "max_tokens"},
      {R"({"prompt": "a", "temperature": "1"})", "temperature"},
      {R"({"prompt": "a", "temperature": 3})", "temperature"},
      {R"({"prompt": "a", "top_p": 0})", "top_p"},
      {R"({"prompt": "a", "top_k": -1})", "top_k"},
      {R"({"prompt": "a", "seed": "7"})", "seed"},
      {R"({"prompt": "a", "n": 2})", "n"},
      {R"({"prompt": "a", "stop": ["1","2","3","4","5"]})", "stop"},
      {R"({"prompt": "a", "stop": [1]})", "stop"},
      {R"({"prompt": "a", "stream_options": {"include_usage": 1}})",
       "stream_options.include_usage"},
      {R"({"prompt": [], "max_tokens": 1})", "prompt"},
      {R"({"prompt": ["a", 1]})", "prompt"},
      {R"({"max_tokens": 1})", "prompt"},
      {R"({"prompt": "a", "model": 3})", "model"},
  };
  for (const auto& b : bad) {
    ember_app::CompletionRequest r;
    EXPECT_FALSE(ember_app::parse_completion_request(b.first, &r, &e)) << b.first;
    EXPECT_EQ(e.param, b.second) << b.first << ": " << e.message;
  }
  ember_app::ChatRequest chat;
  ASSERT_TRUE(ember_app::parse_chat_request(
      R"({"messages": [{"role": "user", "content": [{"type": "text", "text": "a"},
          {"type": "text", "text": "b"}]}], "max_completion_tokens": 4})",
      &chat, &e))
      << e.message;
  EXPECT_EQ(chat.messages[0].content, "ab");
  EXPECT_EQ(chat.g.max_tokens, 4u);
  EXPECT_FALSE(ember_app::parse_chat_request(
      R"({"messages": [{"role": "user", "content": [{"type": "image_url"}]}]})", &chat, &e));
  EXPECT_EQ(e.param, "messages[0].content");
}

}  // namespace
