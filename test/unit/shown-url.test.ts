// A URL typed on the command line is shown in messages (so the user sees which one is wrong), but
// never its password nor its query or fragment: not when it parses, not when it does not, and not
// when it lacks the "//" that lets a URL parser find the user-info at all.

import { describe, expect, it } from "vitest";
import { shownUrl, userinfoSpan, whyNotAUrl } from "../../src/config/url.js";
import { fragments } from "../helpers/fragments.js";

describe("shownUrl", () => {
  it("masks the password of a URL with or without its //, or with no scheme at all", () => {
    expect(shownUrl("amqp://hs-p1:Secret1@localhost:5672/hs-sync")).toBe("amqp://hs-p1:***@localhost:5672/hs-sync");
    expect(shownUrl("amqp:/hs-p1:Secret1@localhost:5672/hs-sync")).toBe("amqp:/hs-p1:***@localhost:5672/hs-sync");
    expect(shownUrl("amqp:hs-p1:Secret1@localhost:5672/hs-sync")).toBe("amqp:hs-p1:***@localhost:5672/hs-sync");
    expect(shownUrl("hs-p1:Secret1@localhost:5672/hs-sync")).toBe("hs-p1:***@localhost:5672/hs-sync");
    expect(shownUrl("http:/u:Secret1@localhost:15672")).toBe("http:/u:***@localhost:15672");
  });

  it("masks the user-info up to its last @, whatever the password holds", () => {
    for (const pw of ["p@ss:w/rd%1", "Xy7/kP9+qR==", "s3cr#et?x", "Sec ret!", "a:b@c"]) {
      for (const raw of [`amqp://user:${pw}@h:5672/v`, `amqp:/user:${pw}@h/v`, `user:${pw}@h/v`]) {
        const shown = shownUrl(raw);
        expect(shown).toMatch(/^(amqp:\/?\/?)?(user:)?\*\*\*@h/);
        for (const f of fragments(pw, 3)) expect(shown, `${raw} -> ${shown}`).not.toContain(f);
      }
    }
    // A user name that is no plain name may be part of the password: masked whole.
    expect(shownUrl("amqp://us/er:pw@h/v")).toBe("amqp://***@h/v");
  });

  it("never shows a query's or a fragment's values", () => {
    expect(shownUrl("amqp://u:pw@h:5672/v?x=Secret4")).toBe("amqp://u:***@h:5672/v?…");
    expect(shownUrl("amqp://u:pw@h:5672/v#Pwsecret")).toBe("amqp://u:***@h:5672/v#…");
    expect(shownUrl("http://localhost:15672/?pw=x")).toBe("http://localhost:15672/?…");
  });

  it("masks a host part that is no host, where a password may have lost its @", () => {
    expect(shownUrl("amqp://u:Secret1localhost:5672/v")).toBe("amqp://***");
    expect(shownUrl("amqp://u:Sec/ret1")).toBe("amqp://***");
    expect(shownUrl("amqp://localhost:5672/v")).toBe("amqp://localhost:5672/v");
    expect(shownUrl("amqp://[::1]:5672/v")).toBe("amqp://[::1]:5672/v");
    expect(shownUrl("http://rabbit.example:15672")).toBe("http://rabbit.example:15672");
  });
});

describe("userinfoSpan", () => {
  it("finds the user-info after a scheme without //, and from the start without a scheme", () => {
    expect(userinfoSpan("amqp://u:p@h")).toEqual({ start: 7, end: 10 });
    expect(userinfoSpan("amqp:/u:p@h")).toEqual({ start: 6, end: 9 });
    expect(userinfoSpan("u:p@h")).toEqual({ start: 0, end: 3 });
    expect(userinfoSpan("amqp://h/v")).toBeUndefined();
  });
});

describe("whyNotAUrl", () => {
  it("says that a scheme lacks its //", () => {
    expect(whyNotAUrl("amqp:/hs-p1:Secret1@localhost:5672/hs-sync")).toBe('"amqp:" is not followed by "//"');
    expect(whyNotAUrl("amqp:hs-p1:Secret1@localhost:5672/hs-sync")).toBe('"amqp:" is not followed by "//"');
    expect(whyNotAUrl("hs-p1:Secret1@localhost:5672/hs-sync")).toMatch(/^it does not start with a scheme and :\/\//);
  });
});
