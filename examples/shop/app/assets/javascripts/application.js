// shop: a small script, fingerprinted by sprockets (no Node).
document.addEventListener("DOMContentLoaded", function () {
  var host = document.getElementById("host");
  if (host) { host.title = "the app server that rendered this page"; }
});
