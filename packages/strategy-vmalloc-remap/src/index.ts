export { vmallocRemap } from "./vmalloc-remap.js";
