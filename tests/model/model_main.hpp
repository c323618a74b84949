// The main() every Relacy model shares: `<exe> <variant> [--expect-failure]`.
// `run(variant, known)` runs the model's suites for that variant, sets `known` to non-zero when it
// recognised the variant, and returns true when Relacy found no failure. Exit status: 0 when the
// result is the expected one (no failure; or, with --expect-failure, a failure), 1 otherwise, 2 for
// bad arguments. tests/model/CMakeLists.txt registers one ctest test per variant.
#pragma once

#include <cstddef>
#include <cstdio>
#include <string>

namespace parkpool::model {

template <class Run>
int model_main(int argc, char** argv, Run run) {
  if (argc < 2) {
    std::fprintf(stderr, "usage: %s <variant> [--expect-failure]\n", argv[0]);
    return 2;
  }
  const std::string variant = argv[1];
  const bool expect_failure = argc > 2 && std::string(argv[2]) == "--expect-failure";
  int known = 0;
  const bool ok = run(variant, known);
  if (known == 0) {
    std::fprintf(stderr, "unknown variant '%s'\n", variant.c_str());
    return 2;
  }
  if (expect_failure) {
    std::printf("%s: Relacy %s a failure (expected one)\n", variant.c_str(),
                ok ? "did NOT find" : "found");
    return ok ? 1 : 0;
  }
  std::printf("%s: %s\n", variant.c_str(), ok ? "no failure found" : "FAILURE found");
  return ok ? 0 : 1;
}

// A model whose variants are a suite plus a change to its Config: a table of these, and
// run_variant() as the `run` of model_main(). `cfg` is reset to Config{} and changed by the named
// variant before its suite runs.
template <class Config>
struct Variant {
  const char* name;
  bool (*suite)();
  void (*change)(Config&);
};

template <class Config, std::size_t N>
bool run_variant(const Variant<Config> (&variants)[N], Config& cfg, const std::string& name,
                 int& known) {
  for (const Variant<Config>& v : variants) {
    if (name != v.name) continue;
    known = 1;
    cfg = Config{};
    v.change(cfg);
    return v.suite();
  }
  known = 0;
  return false;
}

}  // namespace parkpool::model
