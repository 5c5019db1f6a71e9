export { vmallocRemapStrategy } from "./vmalloc-remap.js";
