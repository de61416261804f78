// The dashboard's only script: small conveniences; every page works without it.
(function () {
  "use strict";
  // Filters apply as soon as a choice changes (the "Show" button stays for keyboards).
  document.querySelectorAll("[data-autosubmit]").forEach(function (field) {
    field.addEventListener("change", function () {
      if (field.form && (field.type !== "date" && field.type !== "month" || field.value)) {
        field.form.requestSubmit ? field.form.requestSubmit() : field.form.submit();
      }
    });
  });
  // Forms that change something for good ask first (data-confirm holds the question).
  document.querySelectorAll("form[data-confirm]").forEach(function (form) {
    form.addEventListener("submit", function (event) {
      if (!window.confirm(form.getAttribute("data-confirm"))) {
        event.preventDefault();
        event.stopImmediatePropagation();
      }
    });
  });
  // A double click on a form's button does not send the form twice.
  document.querySelectorAll("form[method='post']").forEach(function (form) {
    form.addEventListener("submit", function () {
      form.querySelectorAll("button[type='submit']").forEach(function (b) { b.disabled = true; });
    });
  });
})();
