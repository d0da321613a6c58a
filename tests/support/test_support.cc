#include "support/test_support.h"

#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <iterator>

namespace ember_test {

std::string shared_dir() {
  const char* env = std::getenv("EMBER_SHARED_DIR");
  return env && *env ? std::string(env) : std::string(EMBER_SHARED_DIR_DEFAULT);
}

std::string shared_path(const std::string& rel) {
  std::string p = shared_dir() + "/" + rel;
  struct stat st;
  return stat(p.c_str(), &st) == 0 ? p : std::string();
}

std::string build_dir() { return EMBER_BUILD_DIR; }

namespace {
struct TempDir {
  std::string path;
  TempDir() {
    char tmpl[] = "/tmp/ember-test-XXXXXX";
    const char* p = mkdtemp(tmpl);
    path = p ? p : "/tmp";
  }
  ~TempDir() {
    if (path != "/tmp") {
      std::string cmd = "rm -rf '" + path + "'";
      int rc = std::system(cmd.c_str());
      (void)rc;
    }
  }
};
TempDir& temp_dir() {
  static TempDir dir;
  return dir;
}
}  // namespace

std::string temp_path(const std::string& name) { return temp_dir().path + "/" + name; }

std::string make_temp_dir(const std::string& name) {
  const std::string path = temp_path(name);
  ::mkdir(path.c_str(), 0755);
  return path;
}

std::vector<unsigned char> read_file(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  return std::vector<unsigned char>(std::istreambuf_iterator<char>(f), {});
}

void write_file(const std::string& path, const void* data, size_t size) {
  std::ofstream f(path, std::ios::binary | std::ios::trunc);
  f.write(static_cast<const char*>(data), static_cast<std::streamsize>(size));
}

int run_command(const std::string& cmd, std::string* output) {
  std::string full = cmd + " 2>&1";
  FILE* p = popen(full.c_str(), "r");
  if (!p) return -1;
  char buf[4096];
  size_t n;
  std::string out;
  while ((n = fread(buf, 1, sizeof buf, p)) > 0) out.append(buf, n);
  int status = pclose(p);
  if (output) *output = out;
  return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

bool in_ci() {
  const char* ci = std::getenv("CI");
  return ci != nullptr && std::string(ci) == "true";
}

}  // namespace ember_test
