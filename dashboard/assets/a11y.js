/* Repairs the ARIA of Dash 4.1's own components, which screen readers and axe-core trip on
   (issue 19; docs/dashboard.md, "Accessibility"). Dash loads every script in assets/.

   - RadioItems, Checklist and a Dropdown's open list mark each choice role="option" in a
     role="listbox", yet every choice holds a native radio or checkbox that takes the focus
     (axe: nested-interactive, aria-allowed-role) and the list has no name
     (aria-input-field-name). The native inputs are what a keyboard and a screen reader use, so
     the list becomes what they are: a named radiogroup (or group) of labelled inputs.
   - A Dropdown's pop-up is a role="dialog" without a name (aria-dialog-name), and its button
     says it opens a listbox: the dialog takes the field's name, the button says "dialog".
   - DatePickerRange's wrapper is a <div> with aria-expanded, aria-haspopup and aria-controls,
     which no div may carry (aria-allowed-attr, critical): it becomes a named group; its two
     date fields keep their own names, and the calendar it opens gets the field's name (and
     its year field, which has none, the name "Year").

   A field's name: the element with id "<control id>-label", else the <label for=control id>.
   Only attributes change, never the elements React renders, so Dash keeps working as it was. */
(function () {
  "use strict";

  function labelIdFor(controlId) {
    if (!controlId) {
      return null;
    }
    if (document.getElementById(controlId + "-label")) {
      return controlId + "-label";
    }
    var label = document.querySelector('label[for="' + CSS.escape(controlId) + '"]');
    if (!label) {
      return null;
    }
    if (!label.id) {
      label.id = controlId + "-label";
    }
    return label.id;
  }

  function set(element, name, value) {
    if (element.getAttribute(name) !== value) {
      element.setAttribute(name, value);
    }
  }

  function unset(element, names) {
    names.forEach(function (name) {
      if (element.hasAttribute(name)) {
        element.removeAttribute(name);
      }
    });
  }

  // The control a pop-up belongs to: the element whose aria-controls names it (kept in
  // data-controlled-by once the attribute is gone).
  function ownerOf(popup) {
    var owner = popup.id && document.querySelector('[aria-controls="' + CSS.escape(popup.id) + '"], [data-a11y-controls="' + CSS.escape(popup.id) + '"]');
    return owner || null;
  }

  function repair() {
    document.querySelectorAll(".dash-options-list-option[role=option]").forEach(function (choice) {
      unset(choice, ["role", "aria-selected"]);
    });
    document.querySelectorAll('.dash-options-list[role="listbox"]').forEach(function (list) {
      set(list, "role", list.querySelector('input[type="radio"]') ? "radiogroup" : "group");
    });
    document.querySelectorAll(".dash-options-list[role=radiogroup], .dash-options-list[role=group]").forEach(function (list) {
      var popup = list.closest("[role=dialog]");
      var owner = popup ? ownerOf(popup) : null;
      var name = labelIdFor(owner ? owner.id : list.id);
      if (name) {
        set(list, "aria-labelledby", name);
      }
    });
    document.querySelectorAll(".dash-dropdown[aria-haspopup=listbox]").forEach(function (button) {
      set(button, "aria-haspopup", "dialog");
    });
    document.querySelectorAll(".dash-dropdown[aria-labelledby]").forEach(function (button) {
      var name = labelIdFor(button.id);
      var value = button.id + "-value";
      if (name) {
        set(button, "aria-labelledby", document.getElementById(value) ? name + " " + value : name);
      }
    });
    document.querySelectorAll(".dash-datepicker-input-wrapper").forEach(function (wrapper) {
      if (wrapper.hasAttribute("aria-controls")) {
        set(wrapper, "data-a11y-controls", wrapper.getAttribute("aria-controls"));
      }
      unset(wrapper, ["aria-expanded", "aria-haspopup", "aria-controls", "aria-disabled", "type"]);
      set(wrapper, "role", "group");
      var input = wrapper.querySelector("input[id]");
      var name = input ? labelIdFor(input.id) : null;
      if (name) {
        set(wrapper, "aria-labelledby", name);
      }
    });
    document.querySelectorAll("[role=dialog] input[type=number]:not([aria-label]):not([aria-labelledby])").forEach(function (field) {
      var owner = ownerOf(field.closest("[role=dialog]"));
      if (owner && owner.matches(".dash-datepicker-input-wrapper")) {
        set(field, "aria-label", "Year");  // the calendar's year, a number field without a name
      }
    });
    document.querySelectorAll("[role=dialog]:not([aria-labelledby]):not([aria-label])").forEach(function (popup) {
      var owner = ownerOf(popup);
      var control = owner && (owner.matches(".dash-datepicker-input-wrapper") ? owner.querySelector("input[id]") : owner);
      var name = control ? labelIdFor(control.id) : null;
      if (name) {
        set(popup, "aria-labelledby", name);
      }
    });
  }

  function start() {
    repair();
    new MutationObserver(repair).observe(document.body, {
      subtree: true,
      childList: true,
      attributes: true,
      attributeFilter: ["role", "aria-expanded", "aria-haspopup", "aria-controls", "aria-labelledby"],
    });
  }

  if (document.body) {
    start();
  } else {
    document.addEventListener("DOMContentLoaded", start);
  }
})();
