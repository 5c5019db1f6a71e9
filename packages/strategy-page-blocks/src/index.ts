export { type PageBlocksFallback, type PageBlocksOptions, pageBlocksStrategy } from "./page-blocks.js";
