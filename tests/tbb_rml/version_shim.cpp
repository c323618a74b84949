// A test-only shim, preloaded AHEAD of libparkpool_tbb, that stands for a oneTBB speaking another
// RML interface version: it exports __RML_open_factory, so oneTBB calls it first, and forwards the
// call to the next definition in lookup order (libparkpool_tbb's) with the client version changed
// to PARKPOOL_TBB_SHIM_CLIENT_VERSION (default: 3). The real server must refuse, and oneTBB must
// fall back to its private server: tbb_rml_workload --expect=refused checks that the library was
// loaded, never connected, and that every result is still right. The shim writes one line per
// call to stderr, which ctest checks (the test cannot pass without the shim in the call path).
#include <dlfcn.h>

#include <cstdio>
#include <cstdlib>

#include "rml_abi.hpp"

namespace rml = parkpool::tbb_rml::abi;

extern "C" __attribute__((visibility("default"))) rml::Status __RML_open_factory(
    rml::Factory& factory, rml::version_type& server_version, rml::version_type client_version) {
  using Open = rml::Status (*)(rml::Factory&, rml::version_type&, rml::version_type);
  const auto next = reinterpret_cast<Open>(dlsym(RTLD_NEXT, "__RML_open_factory"));
  if (next == nullptr) {
    std::fprintf(stderr, "version shim: no __RML_open_factory after the shim\n");
    return rml::st_not_found;
  }
  rml::version_type asked = 3;
  if (const char* v = std::getenv("PARKPOOL_TBB_SHIM_CLIENT_VERSION")) {
    asked = static_cast<rml::version_type>(std::strtoul(v, nullptr, 10));
  }
  const rml::Status st = next(factory, server_version, asked);
  std::fprintf(stderr,
               "version shim: oneTBB asked for version %u, the shim asked for %u, the server "
               "answered status %d (server version %u)\n",
               client_version, asked, static_cast<int>(st), server_version);
  return st;
}
