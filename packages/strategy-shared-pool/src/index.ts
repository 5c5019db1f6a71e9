export { SharedPool, type SharedPoolOptions, sharedPoolStrategy } from "./shared-pool.js";
