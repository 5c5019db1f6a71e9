export { vtomPte } from "./vtom-pte.js";
