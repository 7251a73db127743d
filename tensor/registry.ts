// Every op, by name: conformance tests iterate this, so a new op is tested automatically.
import type { OpDef } from "./op.ts";
import { adamwOp } from "./ops/adamw.ts";
import { attentionBackwardOp, attentionOp } from "./ops/attention.ts";
import { crossEntropyGradOp, crossEntropyOp } from "./ops/cross_entropy.ts";
import { dpStatsOp } from "./ops/dp_stats.ts";
import { dropoutOp } from "./ops/dropout.ts";
import { binaryOps, castOp, unaryOps, whereOp } from "./ops/elementwise.ts";
import { fillOp } from "./ops/fill.ts";
import { gatherOp, scatterAddOp } from "./ops/gather.ts";
import { broadcastToOp, padOp, permuteOp, reshapeOp, sliceOp } from "./ops/layout.ts";
import { matmulOp } from "./ops/matmul.ts";
import { maxOp, sumOp } from "./ops/reduce.ts";
import { rmsNormOp } from "./ops/norm.ts";
import { ropeOp } from "./ops/rope.ts";
import { softmaxOp } from "./ops/softmax.ts";

/** All primitive ops. */
export const opRegistry = {
  ...unaryOps,
  ...binaryOps,
  where: whereOp,
  cast: castOp,
  full: fillOp,
  reshape: reshapeOp,
  permute: permuteOp,
  slice: sliceOp,
  pad: padOp,
  broadcastTo: broadcastToOp,
  sum: sumOp,
  max: maxOp,
  matmul: matmulOp,
  gather: gatherOp,
  scatterAdd: scatterAddOp,
  softmax: softmaxOp,
  rmsNorm: rmsNormOp,
  rope: ropeOp,
  crossEntropy: crossEntropyOp,
  crossEntropyGrad: crossEntropyGradOp,
  attention: attentionOp,
  attentionBackward: attentionBackwardOp,
  dpStats: dpStatsOp,
  dropout: dropoutOp,
  adamw: adamwOp,
} satisfies Record<string, OpDef>;
