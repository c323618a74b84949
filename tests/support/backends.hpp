// The production backends of the futex-word protocols (detail/parker_backend.hpp), as a
// GoogleTest type list: a typed test over it runs the same contract on every backend this
// platform builds (the futex one on Linux, the portable mutex+condvar one everywhere).
#pragma once

#include <parkpool/detail/parker_backend.hpp>

#include <gtest/gtest.h>

namespace parkpool::test {

using ProductionBackends = ::testing::Types<
#if defined(__linux__)
    parkpool::detail::FutexBackend,
#endif
    parkpool::detail::PortableBackend>;

}  // namespace parkpool::test
