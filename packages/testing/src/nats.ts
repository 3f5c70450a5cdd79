export { startNatsForTest as startTestNats } from "@cutroom/runtime/test-nats";
