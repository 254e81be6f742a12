#pragma once
// stitch: combine PyTorch models in C++. Includes the whole public API.

#include "stitch/artifact.h"
#include "stitch/bench.h"
#include "stitch/build.h"
#include "stitch/check.h"
#include "stitch/compat.h"
#include "stitch/error.h"
#include "stitch/graph.h"
#include "stitch/graph_picture.h"
#include "stitch/inspect.h"
#include "stitch/ops.h"
#include "stitch/runtime.h"
#include "stitch/shape.h"
#include "stitch/spec.h"
#include "stitch/tensor_io.h"
#include "stitch/train.h"
#include "stitch/verify.h"
