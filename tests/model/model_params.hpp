// The search the Relacy models run unless they need another: 200,000 schedules picked at random,
// each cut off after `depth_limit` steps (a model whose threads spin needs a bound); or a
// preemption-bounded search (bounded_params). Include it
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

// A search of every schedule with at most `preemptions` preemptions (Relacy's context bound),
// for a model whose exhaustive search is too large: the bound and the schedule count it explores
// are stated in the model's header.
inline rl::test_params bounded_params(unsigned preemptions) {
  rl::test_params p;
  p.search_type = rl::sched_bound;
  p.context_bound = preemptions;
  p.output_history = false;
  return p;
}

}  // namespace parkpool::model
