import { defineConfig } from "vitest/config";

// The pure suites (test/unit): no broker, no build, no global setup. npm run test:unit.
export default defineConfig({
  test: {
    include: ["test/unit/**/*.test.ts"],
    pool: "forks",
    poolOptions: { forks: { maxForks: 2, minForks: 1 } },
  },
});
