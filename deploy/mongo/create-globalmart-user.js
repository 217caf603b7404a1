// Run once by the mongo image on a new data volume (/docker-entrypoint-initdb.d), as the root
// user: GlobalMart's own user, with read-write and index rights on its database only. Name and
// password come from the settings' variables docker-compose.yaml gives this container.
const name = process.env.GLOBALMART_MONGO__USER;
const database = process.env.GLOBALMART_MONGO__DATABASE || "globalmart";
db.getSiblingDB("admin").createUser({
  user: name,
  pwd: process.env.GLOBALMART_MONGO__PASSWORD,
  roles: [{ role: "readWrite", db: database }, { role: "dbAdmin", db: database }],
});
print(`created MongoDB user ${name} on ${database}`);
