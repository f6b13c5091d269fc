/* cellsim_dist.h — the distributions a synthetic workload draws from.
 *
 * Omega's lightweight simulator (google/cluster-scheduler-simulator, the
 * EuroSys 2013 paper's §4) describes each workload — batch and service —
 * by distributions of job inter-arrival time, tasks per job, task duration
 * and per-task resources: exponential ones in its example generators
 * (ExpExpExpWorkloadGenerator) and empirical ones built from a cluster's
 * measurements (its DistCache of quantile tables). cellsim offers the same
 * three kinds:
 *
 *   const:V        always V (a bare number means the same);
 *   exp:MEAN       exponential with that mean (inverse transform);
 *   emp:P=V,...    empirical: values at quantiles P in [0, 1], ascending
 *                  in both, from P = 0 to P = 1; a draw picks a uniform
 *                  quantile and interpolates linearly between the two
 *                  points around it, so each given quantile is respected.
 *
 * Draws use cellstate/rng.h with a state the caller owns: the same seed
 * gives the same workload on every machine.
 */
#ifndef CELLSIM_DIST_H
#define CELLSIM_DIST_H

#include <stdint.h>

#include "cellstate/error.h"

#define SIM_DIST_POINTS 32 /* quantile points of an empirical table */

typedef enum sim_dist_kind { SIM_DIST_CONST = 0, SIM_DIST_EXP = 1, SIM_DIST_EMP = 2 } sim_dist_kind;

/* A distribution, self-contained (copied by assignment). */
typedef struct sim_dist {
    uint8_t kind;   /* sim_dist_kind */
    double value;   /* const: the value; exp: the mean */
    uint32_t n;     /* emp: points */
    double p[SIM_DIST_POINTS], v[SIM_DIST_POINTS];
} sim_dist;

/* Read `text` (only read) in one of the forms above into *out. Values must
 * be finite and >= 0. CS_EINVAL naming what is wrong ("exp:-1: the mean
 * must be > 0"); `what` (e.g. "--batch-tasks") starts the message. */
int sim_dist_parse(const char *what, const char *text, sim_dist *out, cs_error *err);

/* One draw; advances *rng. */
double sim_dist_draw(const sim_dist *d, uint64_t *rng);

/* The distribution's mean (exact for const and exp; of the piecewise
 * linear quantile function for emp). */
double sim_dist_mean(const sim_dist *d);

/* The distribution in the form sim_dist_parse reads, into out[size]. */
void sim_dist_format(const sim_dist *d, char *out, size_t size);

#endif
