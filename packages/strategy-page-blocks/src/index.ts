export { type PageBlocksFallback, type PageBlocksOptions, pageBlocks } from "./page-blocks.js";
