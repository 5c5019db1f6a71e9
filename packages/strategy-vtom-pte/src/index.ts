export { vtomPteStrategy } from "./vtom-pte.js";
