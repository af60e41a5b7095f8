/* repeval run, taps: which checkpoints an analysis selects, names of a global tap,
 * and the pairs an analysis asks for. */
#include <fnmatch.h>
#include <string.h>

#include "run/run.h"

int run_label_selected(const job_analysis *a, const char *label) {
  if (a->npatterns == 0)
    return 1;
  for (int k = 0; k < a->npatterns; k++)
    if (fnmatch(a->ckpt_patterns[k], label, 0) == 0)
      return 1;
  return 0;
}

int run_layer_selected(const job_analysis *a, const char *layer) {
  if (a->nlayer_filter == 0)
    return 1;
  for (int k = 0; k < a->nlayer_filter; k++)
    if (!strcmp(a->layer_filter[k], layer))
      return 1;
  return 0;
}

const char *run_mode_name(re_tap_mode m) { return re_tap_mode_name(m); }

const char *run_tap_model(const runner *r, int t) { return r->plan.j->models[r->plan.taps[t].model].name; }
const char *run_tap_ckpt(const runner *r, int t) {
  return r->plan.j->models[r->plan.taps[t].model].ckpts[r->plan.taps[t].ckpt].label;
}
const char *run_tap_layer(const runner *r, int t) {
  return r->plan.j->models[r->plan.taps[t].model].layers[r->plan.taps[t].layer].name;
}

int run_pair_wanted(const an_run *ar, int p, int q) {
  if (!ar->pairs)
    return 1;
  if (p == q)
    return 0;
  if (ar->share.prow) /* the list in row-major order (an_plan_pairs) */
    return pair_share_has(&ar->share, p, q);
  for (int k = 0; k < ar->npairs; k++) /* a list set after the plan (integrity's) */
    if ((ar->pairs[2 * k] == p && ar->pairs[2 * k + 1] == q) || (ar->pairs[2 * k] == q && ar->pairs[2 * k + 1] == p))
      return 1;
  return 0;
}
