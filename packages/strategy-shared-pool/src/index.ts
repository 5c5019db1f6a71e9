export { type SharedPool, type SharedPoolOptions, sharedPool } from "./shared-pool.js";
