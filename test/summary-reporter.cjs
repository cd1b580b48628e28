// Mocha's spec reporter plus one closing line in the plain form CI tools read:
//   tests: N passed, M failed[, K skipped]
const Mocha = require("mocha");

class SpecWithSummary extends Mocha.reporters.Spec {
  constructor(runner, options) {
    super(runner, options);
    runner.once(Mocha.Runner.constants.EVENT_RUN_END, () => {
      const s = this.stats;
      const skipped = s.pending ? `, ${s.pending} skipped` : "";
      process.stdout.write(`tests: ${s.passes} passed, ${s.failures} failed${skipped}\n`);
    });
  }
}

module.exports = SpecWithSummary;
