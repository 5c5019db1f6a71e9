export {
  baseline,
  checkInvariants,
  hostVisiblePages,
  type InvariantBaseline,
  isHostVisible,
} from "./invariants.js";
export { bootKitEnv, type KitEnv } from "./kit-env.js";
export { bufferPfns, type LifecycleOutcome, runLifecycle } from "./lifecycle.js";
