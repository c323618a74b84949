// The search the Relacy models run unless they need another: 200,000 schedules picked at random,
// each cut off after `depth_limit` steps (a model whose threads spin needs a bound). Include it
// after the model's own includes: it includes <relacy/relacy.hpp>, which must come after the
// production headers a model uses (see model_parker.hpp).
#pragma once

#include <relacy/relacy.hpp>

namespace parkpool::model {

inline rl::test_params random_params(unsigned depth_limit = 4000) {
  rl::test_params p;
  p.search_type = rl::random_scheduler_type;
  p.iteration_count = 200000;
  p.execution_depth_limit = depth_limit;
  return p;
}

}  // namespace parkpool::model
