export { runTraffic, type TrafficOptions, type TrafficReport } from "./traffic.js";
export { type Nic, type NicOptions, Vm, type VmOptions, type VmServices } from "./vm.js";
